"""The Evaluate tab: models and a data file become an eval YAML, `seektune eval` runs it, the page shows the
report and its charts."""

from __future__ import annotations

from pathlib import Path

from seektune.errors import SeektuneError
from seektune.ui import evaluation
from seektune.ui.project import Project, failure, split_names


def build(project: Project) -> None:
    import gradio as gr

    eval_models = gr.Textbox(label="models: run names, packaged names or model folders, one per line",
                             lines=3, elem_id="eval-models")
    eval_data = gr.Textbox(label="evaluation data (in the project folder; one task per file, one per line)",
                           elem_id="eval-data")
    eval_general = gr.Textbox(label="general questions for the forgetting check against the first model "
                              "(optional; files in the project folder)", elem_id="eval-general")
    eval_system = gr.Textbox(label="system prompt for records without one (filled with the one the first run was "
                             "trained with)", elem_id="eval-system")
    eval_type = gr.Radio(list(evaluation.TASK_TYPES), value="generation", label="task type", elem_id="eval-type")
    with gr.Row():
        eval_limit = gr.Number(0, precision=0, label="examples (0 = all)", elem_id="eval-limit")
        eval_tokens = gr.Number(64, precision=0, label="answer length (tokens)", elem_id="eval-tokens")
        eval_name = gr.Textbox("eval", label="evaluation name", elem_id="eval-name")
    eval_button = gr.Button("Evaluate", variant="primary", elem_id="evaluate")
    eval_report = gr.Markdown(elem_id="eval-report")
    eval_charts = gr.Gallery(label="charts", columns=3, elem_id="eval-charts")

    def evaluate(names: str, data: str, general: str, system: str, task_type: str, limit, max_new_tokens,
                 name: str):
        try:
            models = {n: project.model_ref(n) for n in split_names(names)}
            tree = evaluation.eval_tree(project.root, models, data, task_type, limit, max_new_tokens, name.strip(),
                                        system, general)
            config = evaluation.write(tree, project.root, name.strip())
        except SeektuneError as exc:
            return failure("Not started:", str(exc), None), []
        ok, output = project.command("eval", str(config))
        if not ok:
            return failure("seektune eval failed:", output), []
        return evaluation.report(Path(tree["output_dir"]))

    eval_models.blur(lambda names, current: project.system_prompt_for(names, current) or gr.update(),
                     [eval_models, eval_system], eval_system)
    eval_button.click(evaluate, [eval_models, eval_data, eval_general, eval_system, eval_type, eval_limit,
                                 eval_tokens, eval_name], [eval_report, eval_charts])
