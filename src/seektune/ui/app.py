"""`seektune ui`: a local web page over the same commands, one module per tab (`ui/tabs/`). Every action runs a
seektune command as its own process, or drives the Python object the CLI drives (`ChatSession`); the run
directories and <root>/.seektune-ui are the state, so reloading the page, or starting the UI again, shows every
run, evaluation and server as it is."""

from __future__ import annotations

from pathlib import Path

from seektune.ui.project import Project

CSS = ".field-error label span, .field-error .info { color: #c0392b !important; font-weight: 600; }"


def build(root: Path):
    """The gradio Blocks of the page, serving the project folder `root`."""
    import gradio as gr

    from seektune.ui.tabs import chat_tab, data_tab, evaluate_tab, ship_tab, train_tab

    project = Project(root)
    with gr.Blocks(title="seektune") as page:
        gr.Markdown(f"# seektune\nProject folder: `{project.root}`")
        for title, tab in (("Data", data_tab), ("Train", train_tab), ("Evaluate", evaluate_tab),
                           ("Chat", chat_tab), ("Compress & serve", ship_tab)):
            with gr.Tab(title, elem_id=f"{title.split()[0].lower()}-tab"):
                tab.build(project, page) if tab is train_tab else tab.build(project)
    return page


def launch(root: Path, host: str, port: int, token: str | None) -> None:
    """Serve the page; on any address but loopback a token is required (user name: anything)."""
    page = build(root)
    auth = (lambda _user, password: password == token) if token else None
    page.queue().launch(server_name=host, server_port=port, auth=auth, show_error=True, quiet=True, css=CSS,
                        blocked_paths=[str(Project(root).state())])
