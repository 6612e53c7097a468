"""The Data tab: choose or upload a data file, `seektune data inspect` it (format, records, bad records with
file:line, token-length histogram), render its first record with `seektune check-template` (supervised tokens
highlighted), run clean / privacy / leakage as `seektune data` commands and download the output with its manifest.
The work is in `ui/datasteps.py`; this module only lays out the components."""

from __future__ import annotations

import html
import shutil
import tempfile
from pathlib import Path

from seektune.errors import SeektuneError
from seektune.ui import datasteps
from seektune.ui.project import Project


def download_copies(paths: list[Path], keep: int = 8) -> list[str]:
    """Copies of step outputs in the system temp folder for gr.File: launch() blocks <root>/.seektune-ui from
    being served, and gradio 6 refuses to move a blocked file into its cache even as a function's output
    (processing_utils._check_allowed); the temp folder is allowed. The newest `keep` copies stay."""
    base = Path(tempfile.gettempdir()) / "seektune-ui-downloads"
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=base))
    for old in sorted(base.iterdir(), key=lambda p: p.stat().st_mtime)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    copies = []
    for path in paths:
        target = folder / path.name.lstrip(".")
        shutil.copyfile(path, target)
        copies.append(str(target))
    return copies


def build(project: Project) -> None:
    import gradio as gr

    with gr.Row():
        data_file = gr.Textbox(label="data file (in the project folder)", elem_id="inspect-file", scale=3)
        files = gr.Dropdown(datasteps.data_files(project), value=None, label="or choose a project data file",
                            elem_id="data-files", scale=3)
        refresh = gr.Button("\u21bb", size="sm", elem_id="data-files-refresh", scale=0, min_width=40)
        upload = gr.UploadButton("Upload .jsonl / .json", file_types=[".jsonl", ".json"], file_count="single",
                                 elem_id="data-upload", scale=1)
    data_tokenizer = gr.Textbox("deepseek", label="tokenizer for token lengths and the rendered example (deepseek, "
                                "a packaged model, a model folder, a run; none)", elem_id="inspect-tokenizer")
    inspect_button = gr.Button("Inspect", variant="primary", elem_id="inspect")
    data_summary = gr.Markdown(elem_id="data-summary")
    data_report = gr.Markdown(elem_id="inspect-report")
    data_histogram = gr.Image(label="token lengths", type="pil", interactive=False, elem_id="inspect-plot")
    data_example = gr.HTML(elem_id="data-example")

    gr.Markdown("### Steps\nEach runs as `seektune data <step>` on the data file above; the output goes to "
                "`.seektune-ui/data/<step>/` with `<output>.manifest.json` beside it.")
    with gr.Row():
        step = gr.Radio(list(datasteps.STEPS), value="clean", label="step", elem_id="data-step")
        skip_bad = gr.Checkbox(False, label="skip bad records (counted in the manifest)", elem_id="data-skip-bad")
    with gr.Row():
        test_file = gr.Textbox(label="leakage: test file (in the project folder)", elem_id="data-test-file")
        key_file = gr.Textbox(label="privacy: key file (in the project folder; empty: $SEEKTUNE_PRIVACY_SECRET or "
                              "a key the UI keeps)", elem_id="data-key-file")
    run_button = gr.Button("Run step", variant="primary", elem_id="data-run-step")
    step_report = gr.Markdown(elem_id="data-step-report")
    download = gr.File(label="output, manifest and report", file_count="multiple", interactive=False,
                       elem_id="data-download")

    def choices():
        return gr.update(choices=datasteps.data_files(project))

    def uploaded(temp_path: str | None):
        if not temp_path:
            return gr.update(), gr.update(), ""
        try:
            saved = datasteps.save_upload(project, temp_path)
        except SeektuneError as exc:
            return gr.update(), gr.update(), f"**Not uploaded:** {exc}"
        rel = saved.relative_to(project.root).as_posix()
        return rel, gr.update(choices=datasteps.data_files(project), value=rel), f"Uploaded to `{rel}`."

    def inspect(path: str, tokenizer: str):
        try:
            return datasteps.inspect(project, path, tokenizer)
        except SeektuneError as exc:
            return f"**Not inspected:** {exc}", "", None

    def example(path: str, tokenizer: str):
        try:
            page = datasteps.render_example(project, path, tokenizer)
        except SeektuneError as exc:
            return f"<p><b>No example rendered:</b> {html.escape(str(exc))}</p>"
        return page

    def run(path: str, name: str, skip: bool, test: str, key: str):
        options = {"skip_bad": skip, **({"test": test} if name == "leakage" else {}),
                   **({"key_file": key} if name == "privacy" else {})}
        try:
            report, output, _ = datasteps.run_step(project, name, [path], options)
        except SeektuneError as exc:
            return f"**Not run:** {exc}", None, gr.update()
        copies = download_copies(datasteps.step_files(output)) if output is not None else None
        return report, copies, choices()

    refresh.click(choices, None, files)
    files.select(lambda chosen: chosen or gr.update(), files, data_file)   # not .input: a blur re-sends it
    upload.upload(uploaded, upload, [data_file, files, data_summary])
    inspect_button.click(inspect, [data_file, data_tokenizer], [data_summary, data_report, data_histogram]).then(
        example, [data_file, data_tokenizer], data_example)
    run_button.click(run, [data_file, step, skip_bad, test_file, key_file], [step_report, download, files])
