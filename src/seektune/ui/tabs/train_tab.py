"""The Train tab: every key of the training config as a field (the key settings first, the rest by section),
each validation error shown beside the field it names; the equivalent `seektune train` command and config; a
template check; start, and the runs (read back from disk) with live loss and learning-rate charts, stop and
resume. A run is a `seektune train` process of its own (ui/jobs.py): closing the page does not stop it."""

from __future__ import annotations

from pathlib import Path

import yaml

from seektune.errors import SeektuneError
from seektune.method_config import METHODS
from seektune.ui import forms
from seektune.ui.datasteps import save_upload
from seektune.ui.jobs import metrics
from seektune.ui.project import Project, failure

REFRESH_S = 2.0
KEY_SETTINGS = ["model.name_or_path", "method.name", "data.train", "data.system_prompt", "train.epochs",
                "train.max_steps", "train.learning_rate", "train.micro_batch_size", "data.max_length",
                "method.lora.r", "method.lora.lora_alpha", "output.name"]
SECTIONS = list(dict.fromkeys(f.key.split(".")[0] for f in forms.FIELDS))   # model, method, data, train, ...


def _widget(gr, field: forms.FormField):
    """The widget of one config key: its help text under the label, its default as the value."""
    common = {"label": field.label, "info": field.help, "elem_id": field.elem_id}
    value = field.shown_default()
    if field.key == "method.name":
        return gr.Radio(list(METHODS), value=value, **common)
    if field.key == "model.name_or_path":
        from seektune.models.registry import PACKAGED

        common["info"] += f" (packaged: {', '.join(PACKAGED)}; or a model folder in the project)"
    if field.kind in ("bool", "section"):
        return gr.Checkbox(value=bool(value), **common)
    if field.kind in ("int", "float") and not field.optional:   # gradio's Number has no "not set"
        return gr.Number(value, precision=0 if field.kind == "int" else None, **common)
    if field.kind == "choice":
        choices = [str(c) for c in field.choices] + ([forms.NONE] if field.optional else [])
        return gr.Dropdown(choices, value=value, **common)
    return gr.Textbox(value, lines=2 if field.kind == "files" else 1, **common)


def _relative(root: Path, values: dict) -> dict:
    """Paths inside the project shown relative to it, as a user would type them."""
    def short(text: str) -> str:
        path = Path(text)
        return str(path.relative_to(root)) if path.is_absolute() and path.is_relative_to(root) else text

    out = dict(values)
    for key in ("data.train", "data.eval"):
        lines = []
        for line in str(values[key]).splitlines():
            if line.startswith("{"):
                entry = yaml.safe_load(line)
                lines.append(yaml.safe_dump({**entry, "path": short(entry["path"])}, default_flow_style=True).strip())
            else:
                lines.append(short(line))
        out[key] = "\n".join(lines)
    for key in ("model.name_or_path", "train.term_file", "output.dir"):
        if isinstance(values[key], str):
            out[key] = short(values[key])
    return out


def loaded_values(project: Project, source: str) -> dict:
    """The form's values from a run's saved config (a UI run name) or a training YAML in the project, read by
    the loader `seektune train` uses (relative paths resolved beside the YAML, as it resolves them)."""
    from seektune import config

    run_dir = project.jobs.run_dir(source.strip())
    path = run_dir / "config.yaml" if run_dir and (run_dir / "config.yaml").is_file() else \
        project.inside(source.strip(), "config")
    tree = config.load(path).model_dump(exclude_defaults=True)
    tree.setdefault("output", {}).pop("dir", None)   # runs of the page go to <project>/runs
    return _relative(project.root, forms.form_values(tree))


def build(project: Project, page) -> None:
    import gradio as gr
    import pandas as pd

    jobs = project.jobs
    widgets: dict[str, object] = {}
    with gr.Row():
        load_source = gr.Textbox(label="start from: a run's name or a training YAML in the project (optional)",
                                 elem_id="load-config", scale=4)
        load_button = gr.Button("Load settings", elem_id="load", scale=1)
    gr.Markdown("### Key settings")
    for key in KEY_SETTINGS:
        widgets[key] = _widget(gr, forms.BY_KEY[key])
        if key == "data.train":
            with gr.Row():
                upload = gr.UploadButton("Upload a data file (kept in the run's upload folder)",
                                         file_types=[".jsonl", ".json"], elem_id="train-upload")
    for section in SECTIONS:
        rest = [f for f in forms.FIELDS if f.key.split(".")[0] == section and f.key not in KEY_SETTINGS]
        with gr.Accordion(f"All {section} settings ({len(rest)})", open=False, elem_id=f"section-{section}"):
            group = None
            for field in rest:
                parent = field.key.rsplit(".", 1)[0]
                if parent != section and parent != group and field.kind != "section":
                    gr.Markdown(f"**{parent}**")
                group = parent
                widgets[field.key] = _widget(gr, field)
    inputs = [widgets[f.key] for f in forms.FIELDS]
    problems = gr.Markdown(elem_id="form-problems")
    command = gr.Markdown(elem_id="command")
    config_text = gr.Code(language="yaml", label="the config this form writes", elem_id="config-yaml")
    template_button = gr.Button("Check template (a rendered example, supervised spans marked)",
                                elem_id="check-template")
    template = gr.Markdown(elem_id="template")
    start_button = gr.Button("Start training", variant="primary", elem_id="start")
    status = gr.Markdown(elem_id="train-status")
    gr.Markdown("## Runs")
    runs = gr.Dataframe(headers=["run", "state", "step", "loss"], interactive=False, elem_id="runs")
    selected = gr.Dropdown(label="run", choices=[], elem_id="selected-run")
    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y="loss", title="training loss", elem_id="loss-plot")
        lr_plot = gr.LinePlot(x="step", y="lr", title="learning rate", elem_id="lr-plot")
    with gr.Row():
        stop_button = gr.Button("Stop", elem_id="stop")
        resume_button = gr.Button("Resume", elem_id="resume")
    action = gr.Markdown(elem_id="run-action")
    log = gr.Textbox(label="log (last lines)", lines=8, interactive=False, elem_id="log")

    def values_of(*values) -> dict:
        return dict(zip([f.key for f in forms.FIELDS], values))

    def preview(*values):
        """The command and config the form stands for, and each problem beside its field."""
        tree, found = forms.config_tree(project.root, values_of(*values))
        cfg, errors, message = forms.field_errors(tree)
        found = {**errors, **found}
        updates = []
        for field in forms.FIELDS:
            problem = found.pop(field.key, None)
            if problem:
                problem = problem.removeprefix(f"{field.key}: ")
                updates.append(gr.update(label=f"{field.label}: {problem}", elem_classes=["field-error"]))
            else:
                updates.append(gr.update(label=field.label, elem_classes=[]))
        rest = "\n".join(f"- {k or 'config'}: {v}" for k, v in found.items())
        name = tree["output"].get("name", "run")
        config = project.state("configs", f"{name}.yaml")
        text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
        if cfg is None:
            head = "**Not valid yet** (the fields marked in red say why)" + (f":\n{rest}" if rest else "")
        else:
            head = f"Equivalent command:\n\n```\n{forms.command_line(config)}\n```"
        return [head, text, *updates]

    def written(*values):
        """The form's config written where `seektune train` reads it, or a SeektuneError naming each problem."""
        tree, found = forms.config_tree(project.root, values_of(*values))
        if found:
            raise SeektuneError("; ".join(f"{k}: {v}" for k, v in found.items()))
        return forms.write(tree, project.root)

    def start(*values):
        try:
            config, cfg = written(*values)
            jobs.start(cfg.output.name, config, Path(cfg.output.dir) / cfg.output.name)
        except SeektuneError as exc:
            return failure("Not started:", str(exc), None), _runs_table(jobs)
        return f"Started `{forms.command_line(config)}`", _runs_table(jobs)

    def check_template(*values):
        try:
            config, _ = written(*values)
        except SeektuneError as exc:
            return failure("Not valid yet:", str(exc), None)
        ok, output = project.command("check-template", str(config), "--records", "2")
        return failure("Template check failed:", output, 4000) if not ok else \
            f"Template check passed:\n\n```\n{output[-4000:]}\n```"

    def load(source: str):
        if not source.strip():
            return [gr.update()] * len(inputs) + ["name a run or a YAML file to start from"]
        try:
            values = loaded_values(project, source)
        except SeektuneError as exc:   # not found, or not a valid training config (the message names the key)
            return [gr.update()] * len(inputs) + [f"**Not loaded:** {exc}"]
        return [values[f.key] for f in forms.FIELDS] + [f"loaded the settings of `{source.strip()}`"]

    def uploaded(file, current: str, name: str):
        try:
            saved = save_upload(project, Path(file), run=name or "run")
        except SeektuneError as exc:
            return current, f"**Not uploaded:** {exc}"
        lines = [line for line in str(current or "").splitlines() if line.strip()]
        return "\n".join([*lines, str(saved.relative_to(project.root))]), f"uploaded to `{saved}`"

    def refresh(chosen: str | None):
        table = _runs_table(jobs)
        names = [row[0] for row in table]
        chosen = chosen if chosen in names else (names[0] if names else None)
        run_dir = jobs.run_dir(chosen) if chosen else None
        rows = metrics(run_dir) if run_dir else []
        curve = pd.DataFrame({"step": [r["step"] for r in rows], "loss": [r["loss"] for r in rows],
                              "lr": [r.get("lr", 0.0) for r in rows]})
        return table, gr.update(choices=names, value=chosen), curve, curve, jobs.log_tail(chosen) if chosen else ""

    def stop(name: str | None):
        return f"stopped {name}" if name and jobs.stop(name) else "nothing to stop"

    def resume(name: str | None):
        run_dir = jobs.run_dir(name) if name else None
        if run_dir is None:
            return "choose a run"
        saved = run_dir / "config.yaml"   # the run's own config: the form may have changed since it started
        try:
            jobs.start(name, saved if saved.is_file() else project.state("configs", f"{name}.yaml"), run_dir,
                       resume=True)
        except SeektuneError as exc:
            return str(exc)
        return f"resuming {name}"

    for component in inputs:
        component.change(preview, inputs, [command, config_text, *inputs], trigger_mode="always_last",
                         show_progress="hidden")
    page.load(preview, inputs, [command, config_text, *inputs])
    load_button.click(load, load_source, [*inputs, problems])
    upload.upload(uploaded, [upload, widgets["data.train"], widgets["output.name"]], [widgets["data.train"], problems])
    start_button.click(start, inputs, [status, runs])
    template_button.click(check_template, inputs, template)
    timer = gr.Timer(REFRESH_S)
    timer.tick(refresh, selected, [runs, selected, loss_plot, lr_plot, log], show_progress="hidden")
    page.load(refresh, selected, [runs, selected, loss_plot, lr_plot, log])
    stop_button.click(stop, selected, action)
    resume_button.click(resume, selected, action)


def _runs_table(jobs) -> list[list]:
    return [[s.name, s.state, s.step, "" if s.loss is None else round(s.loss, 4)] for s in jobs.statuses()]
