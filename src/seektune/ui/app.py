"""`seektune ui`: a local web page over the same commands. Data runs `seektune data inspect`; Train builds a
config from a form (validated by the training loader, shown as the equivalent command, checked by `seektune
check-template`), starts `seektune train` as its own process and charts its loss from metrics.jsonl; Evaluate
writes an eval YAML and runs `seektune eval`, then shows its report and charts; Chat asks a run (and, side by
side, another model) through `ChatSession`, the object `seektune chat` drives. The run directories are the state:
reloading the page, or starting the UI again, shows every run as it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from seektune.errors import SeektuneError
from seektune.method_config import METHODS
from seektune.ui import evaluation, forms
from seektune.ui.jobs import Jobs, metrics

REFRESH_S = 2.0
MAX_SESSIONS = 4   # models kept loaded for chat (a run and its base, twice)


def _runs_table(jobs: Jobs) -> list[list]:
    return [[s.name, s.state, s.step, "" if s.loss is None else round(s.loss, 4)] for s in jobs.statuses()]


def _loss_frame(jobs: Jobs, name: str | None):
    import pandas as pd

    run_dir = jobs.run_dir(name) if name else None
    rows = metrics(run_dir) if run_dir else []
    return pd.DataFrame({"step": [r["step"] for r in rows], "loss": [r["loss"] for r in rows]})


def seektune_command(root: Path, *args: str) -> tuple[bool, str]:
    """Run one seektune command in the project folder (the page's work goes through the CLI, never around it):
    (succeeded, its output)."""
    done = subprocess.run([sys.executable, "-m", "seektune.cli", *args], cwd=root, capture_output=True, text=True)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def inspect_data(root: Path, path: str, tokenizer: str):
    """`seektune data inspect` on a project file: its report (markdown) and token-length histogram."""
    from PIL import Image

    source = forms.inside(root, path, "data file")
    tokenizer = tokenizer.strip() or "none"
    if "/" in tokenizer or (root / tokenizer).exists():   # a model folder: inside the project too
        tokenizer = str(forms.inside(root, tokenizer, "tokenizer"))
    out = root / ".seektune-ui" / "inspect" / source.stem
    ok, output = seektune_command(root, "data", "inspect", str(source), "--out-dir", str(out), "--tokenizer",
                                  tokenizer)
    if not ok:
        return f"**Inspection failed:**\n\n```\n{output[-3000:]}\n```", None
    report = "\n".join(line for line in (out / "inspect.md").read_text(encoding="utf-8").splitlines()
                       if not line.startswith("!["))
    histogram = out / "token_lengths.png"
    return report, Image.open(histogram).copy() if histogram.is_file() else None


def build(root: Path):
    """The gradio Blocks of the page, serving the project folder `root`."""
    import gradio as gr

    jobs = Jobs(root)
    sessions: dict[str, object] = {}
    field = {f.key: f for f in forms.FIELDS}

    def form_values(*values) -> dict:
        return dict(zip([f.key for f in forms.FIELDS], values))

    def preview(*values):
        try:
            tree = forms.config_tree(root, form_values(*values))
            forms.check(tree)
        except SeektuneError as exc:
            return f"**Not valid yet:**\n\n```\n{exc}\n```"
        name = tree["output"].get("name", "run")
        config = root / ".seektune-ui" / "configs" / f"{name}.yaml"
        return f"Equivalent command:\n\n```\n{forms.command_line(config)}\n```"

    def start(*values):
        try:
            tree = forms.config_tree(root, form_values(*values))
            config, cfg = forms.write(tree, root)
            jobs.start(cfg.output.name, config, Path(cfg.output.dir) / cfg.output.name)
        except SeektuneError as exc:
            return f"**Not started:**\n\n```\n{exc}\n```", _runs_table(jobs)
        return f"Started `{forms.command_line(config)}`", _runs_table(jobs)

    def refresh(selected: str | None):
        table = _runs_table(jobs)
        names = [row[0] for row in table]
        chosen = selected if selected in names else (names[0] if names else None)
        return table, gr.update(choices=names, value=chosen), _loss_frame(jobs, chosen), \
            jobs.log_tail(chosen) if chosen else ""

    def check_template(*values):
        try:
            config, _ = forms.write(forms.config_tree(root, form_values(*values)), root)
        except SeektuneError as exc:
            return f"**Not valid yet:**\n\n```\n{exc}\n```"
        ok, output = seektune_command(root, "check-template", str(config), "--records", "2")
        return f"{'Template check passed' if ok else '**Template check failed**'}:\n\n```\n{output[-4000:]}\n```"

    def inspect(path: str, tokenizer: str):
        try:
            return inspect_data(root, path, tokenizer)
        except SeektuneError as exc:
            return f"**Not inspected:** {exc}", None

    def stop(name: str | None):
        return f"stopped {name}" if name and jobs.stop(name) else "nothing to stop"

    def resume(name: str | None):
        run_dir = jobs.run_dir(name) if name else None
        if run_dir is None:
            return "choose a run"
        try:
            jobs.start(name, root / ".seektune-ui" / "configs" / f"{name}.yaml", run_dir, resume=True)
        except SeektuneError as exc:
            return str(exc)
        return f"resuming {name}"

    def model_ref(name: str) -> str:
        """A run the UI started (its directory), a packaged model, or a model folder inside the project."""
        from seektune.models.registry import PACKAGED

        name = name.strip()
        run_dir = jobs.run_dir(name)
        if run_dir is not None:
            return str(run_dir)
        return name if name in PACKAGED else str(forms.inside(root, name, "model"))

    def answer(name: str, prompt: str) -> str:
        from seektune.evaluate.runner import weights_stamp
        from seektune.inference.session import ChatSession

        target = model_ref(name)
        key = f"{target} {weights_stamp(target)}"   # a run trained again under its name is loaded again
        if key not in sessions:
            while len(sessions) >= MAX_SESSIONS:   # the oldest loaded model leaves memory first
                sessions.pop(next(iter(sessions)))
            sessions[key] = ChatSession.open([target], max_new_tokens=64)
        session = sessions[key]
        session.reset()
        return session.ask(prompt)

    def ask(run: str, other: str, prompt: str):
        """The run's answer and, side by side, the answer of the model it is compared with (e.g. its base)."""
        if not run.strip() or not prompt.strip():
            return "choose a run and write a question", ""
        try:
            return answer(run, prompt), answer(other, prompt) if other.strip() else ""
        except SeektuneError as exc:
            return f"error: {exc}", ""

    def evaluate(names: str, data: str, task_type: str, limit, max_new_tokens, name: str):
        try:
            models = {n.strip(): model_ref(n) for n in names.replace(",", "\n").splitlines() if n.strip()}
            tree = evaluation.eval_tree(root, models, data, task_type, limit, max_new_tokens, name.strip())
            config = evaluation.write(tree, root, name.strip())
        except SeektuneError as exc:
            return f"**Not started:**\n\n```\n{exc}\n```", []
        ok, output = seektune_command(root, "eval", str(config))
        if not ok:
            return f"**seektune eval failed:**\n\n```\n{output[-3000:]}\n```", []
        return evaluation.report(Path(tree["output_dir"]))

    with gr.Blocks(title="seektune") as page:
        gr.Markdown(f"# seektune\nProject folder: `{root}`")
        with gr.Tab("Data"):
            data_file = gr.Textbox(label="data file (in the project folder)", elem_id="inspect-file")
            data_tokenizer = gr.Textbox("deepseek", label="tokenizer for token lengths (deepseek, a model, none)",
                                        elem_id="inspect-tokenizer")
            inspect_button = gr.Button("Inspect", variant="primary", elem_id="inspect")
            data_report = gr.Markdown(elem_id="inspect-report")
            data_histogram = gr.Image(label="token lengths", type="pil", interactive=False, elem_id="inspect-plot")
        with gr.Tab("Train", elem_id="train-tab"):
            inputs = [
                gr.Textbox("smollm2-135m-instruct", label=field["model.name_or_path"].label,
                           info=field["model.name_or_path"].help, elem_id="model"),
                gr.Radio(list(METHODS), value="lora", label="method", info=field["method.name"].help,
                         elem_id="method"),
                gr.Textbox(label=field["data.train"].label, info="files in the project folder, one per line",
                           elem_id="data"),
                gr.Number(30, precision=0, label="steps", info=field["train.max_steps"].help, elem_id="steps"),
                gr.Number(2e-4, label="learning rate", info=field["train.learning_rate"].help, elem_id="lr"),
                gr.Number(4, precision=0, label="micro-batch", info=field["train.micro_batch_size"].help,
                          elem_id="batch"),
                gr.Number(512, precision=0, label="max length", info=field["data.max_length"].help,
                          elem_id="max-length"),
                gr.Number(16, precision=0, label="LoRA rank", info=field["method.lora.r"].help, elem_id="rank"),
                gr.Textbox("run", label="run name", info=field["output.name"].help, elem_id="run-name"),
            ]
            command = gr.Markdown(elem_id="command")
            template_button = gr.Button("Check template (a rendered example, supervised spans marked)",
                                        elem_id="check-template")
            template = gr.Markdown(elem_id="template")
            start_button = gr.Button("Start training", variant="primary", elem_id="start")
            status = gr.Markdown(elem_id="train-status")
            gr.Markdown("## Runs")
            runs = gr.Dataframe(headers=["run", "state", "step", "loss"], interactive=False, elem_id="runs")
            selected = gr.Dropdown(label="run", choices=[], elem_id="selected-run")
            plot = gr.LinePlot(x="step", y="loss", title="training loss", elem_id="loss-plot")
            with gr.Row():
                stop_button = gr.Button("Stop", elem_id="stop")
                resume_button = gr.Button("Resume", elem_id="resume")
            action = gr.Markdown(elem_id="run-action")
            log = gr.Textbox(label="log (last lines)", lines=8, interactive=False, elem_id="log")
        with gr.Tab("Evaluate"):
            eval_models = gr.Textbox(label="models: run names, packaged names or model folders, one per line",
                                     lines=3, elem_id="eval-models")
            eval_data = gr.Textbox(label="evaluation data (in the project folder)", elem_id="eval-data")
            eval_type = gr.Radio(list(evaluation.TASK_TYPES), value="generation", label="task type",
                                 elem_id="eval-type")
            with gr.Row():
                eval_limit = gr.Number(0, precision=0, label="examples (0 = all)", elem_id="eval-limit")
                eval_tokens = gr.Number(64, precision=0, label="answer length (tokens)", elem_id="eval-tokens")
                eval_name = gr.Textbox("eval", label="evaluation name", elem_id="eval-name")
            eval_button = gr.Button("Evaluate", variant="primary", elem_id="evaluate")
            eval_report = gr.Markdown(elem_id="eval-report")
            eval_charts = gr.Gallery(label="charts", columns=3, elem_id="eval-charts")
        with gr.Tab("Chat", elem_id="chat-tab"):
            with gr.Row():
                chat_run = gr.Textbox(label="run (a run's name, a packaged name or a model folder in the project)",
                                      elem_id="chat-run")
                chat_other = gr.Textbox(label="compare with (e.g. its base; optional)", elem_id="chat-base")
            prompt = gr.Textbox(label="question", elem_id="chat-prompt")
            ask_button = gr.Button("Ask", variant="primary", elem_id="ask")
            with gr.Row():
                reply = gr.Textbox(label="answer", interactive=False, elem_id="chat-answer")
                other_reply = gr.Textbox(label="answer of the compared model", interactive=False,
                                         elem_id="chat-base-answer")

        for component in inputs:
            component.change(preview, inputs, command)
        start_button.click(start, inputs, [status, runs])
        template_button.click(check_template, inputs, template)
        inspect_button.click(inspect, [data_file, data_tokenizer], [data_report, data_histogram])
        timer = gr.Timer(REFRESH_S)
        timer.tick(refresh, selected, [runs, selected, plot, log])
        page.load(refresh, selected, [runs, selected, plot, log])
        page.load(preview, inputs, command)
        stop_button.click(stop, selected, action)
        resume_button.click(resume, selected, action)
        ask_button.click(ask, [chat_run, chat_other, prompt], [reply, other_reply])
        eval_button.click(evaluate, [eval_models, eval_data, eval_type, eval_limit, eval_tokens, eval_name],
                          [eval_report, eval_charts])
    return page


def launch(root: Path, host: str, port: int, token: str | None) -> None:
    """Serve the page; on any address but loopback a token is required (user name: anything)."""
    page = build(root)
    auth = (lambda _user, password: password == token) if token else None
    page.queue().launch(server_name=host, server_port=port, auth=auth, show_error=True, quiet=True,
                        blocked_paths=[str(root / ".seektune-ui")])
