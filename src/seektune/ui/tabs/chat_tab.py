"""The Chat tab: ask a run (or several adapter runs of one base, loaded once side by side and switched without
reloading) and, beside it, another model such as its base, through `ChatSession` (what `seektune chat` drives)."""

from __future__ import annotations

from seektune.errors import SeektuneError
from seektune.ui.project import Project, split_names

MAX_SESSIONS = 4   # models kept loaded for chat (a run and its base, twice)


class Sessions:
    """Loaded chat models, keyed by what they were loaded from and the weights' stamp (a run trained again under
    its name is loaded again); the oldest leaves memory first."""

    def __init__(self, project: Project):
        self.project = project
        self.open: dict[str, object] = {}

    def get(self, names: list[str]):
        from seektune.evaluate.runner import weights_stamp
        from seektune.inference.session import ChatSession

        refs = [self.project.model_ref(n) for n in names]
        key = " ".join(f"{r} {weights_stamp(r)}" for r in refs)
        if key not in self.open:
            while len(self.open) >= MAX_SESSIONS:
                self.open.pop(next(iter(self.open)))
            self.open[key] = ChatSession.open(refs, max_new_tokens=64)
        return self.open[key]

    def answer(self, names: list[str], prompt: str, adapter: str | None = None, system: str = "",
               max_new_tokens: int = 64) -> tuple[str, object]:
        """The answer of `names` (one model, or adapters side by side with `adapter` active) to `prompt` alone,
        as `seektune chat --system S --max-new-tokens N --prompt P` answers it."""
        session = self.get(names)
        if session.adapters and adapter in session.adapters and adapter != session.active:
            session.use_adapter(adapter)
        session.system = system.strip() or None
        session.max_new_tokens = int(max_new_tokens)
        session.reset()
        return session.ask(prompt), session


def build(project: Project) -> None:
    import gradio as gr

    sessions = Sessions(project)
    with gr.Row():
        chat_run = gr.Textbox(label="run (a run's name, a packaged name or a model folder in the project; several "
                              "adapter runs of one base, comma-separated, load once and switch below)",
                              elem_id="chat-run")
        chat_other = gr.Textbox(label="compare with (e.g. its base; optional)", elem_id="chat-base")
    with gr.Row():
        adapter = gr.Dropdown(label="active adapter (when several runs are loaded)", choices=[],
                              elem_id="chat-adapter")
        max_tokens = gr.Number(64, precision=0, label="answer length (tokens)", elem_id="chat-tokens")
    system = gr.Textbox(label="system message (filled with the one the run was trained with)", elem_id="chat-system")
    prompt = gr.Textbox(label="question", elem_id="chat-prompt")
    ask_button = gr.Button("Ask", variant="primary", elem_id="ask")
    with gr.Row():
        reply = gr.Textbox(label="answer", interactive=False, elem_id="chat-answer")
        other_reply = gr.Textbox(label="answer of the compared model", interactive=False,
                                 elem_id="chat-base-answer")

    def ask(run: str, other: str, question: str, active: str | None, system_text: str, tokens):
        names = split_names(run)
        if not names or not question.strip():
            return "choose a run and write a question", "", gr.update()
        try:
            text, session = sessions.answer(names, question, active, system_text, tokens or 64)
            other_text = sessions.answer(split_names(other), question, None, system_text, tokens or 64)[0] \
                if other.strip() else ""
        except SeektuneError as exc:
            return f"error: {exc}", "", gr.update()
        return text, other_text, gr.update(choices=session.adapters, value=session.active)

    chat_run.blur(lambda names, current: project.system_prompt_for(names, current) or gr.update(),
                  [chat_run, system], system)
    ask_button.click(ask, [chat_run, chat_other, prompt, adapter, system, max_tokens], [reply, other_reply, adapter])
