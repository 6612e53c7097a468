"""The Compress & serve tab: merge, quantize or export a run as its seektune command, then serve it with
`seektune serve` (detached, on loopback) and show the curl / openai call that reaches it. The equivalent command
line is shown before anything runs, so the page teaches the CLI rather than hiding it."""

from __future__ import annotations

from seektune.errors import SeektuneError
from seektune.ui import serving
from seektune.ui.project import Project, failure, split_names


def _servers_table(servers: serving.Servers) -> str:
    rows = servers.statuses()
    if not rows:
        return "No server started from this page."
    lines = ["| port | state | URL | models |", "|---|---|---|---|"]
    for s in rows:
        lines.append(f"| {s.port} | {s.state} | {s.url or ''} | {', '.join(s.served or s.models)} |")
    return "\n".join(lines)


def _snippet(project: Project, status: serving.ServerStatus | None) -> str:
    """The client call of the server's first model, with the system prompt its run was trained with."""
    if status is None or status.state != "running" or not status.served:
        return ""
    system = project.trained_system_prompt(status.models[:1])
    shown = serving.client_snippet(status.url, status.served[0], status.keys_required, system=system).markdown()
    others = f"\n\nOther model names on this server: {', '.join(status.served[1:])}" if status.served[1:] else ""
    return shown + others


def build(project: Project) -> None:
    import gradio as gr

    servers = serving.Servers(project.root)

    gr.Markdown("### Compress\nA merged model (adapter runs), a quantized model directory, or one GGUF file for "
                "llama.cpp / Ollama, written under `.seektune-ui/compressed/`.")
    ship_model = gr.Textbox(label="model: a run's name, a packaged name or a model folder in the project",
                            elem_id="ship-model")
    with gr.Row():
        ship_action = gr.Radio(list(serving.TYPES), value="quantize", label="action", elem_id="ship-action")
        ship_type = gr.Dropdown(serving.TYPES["quantize"], value="int8", label="type", elem_id="ship-type")

    def preview_compress(name: str, action: str, type_: str | None) -> str:
        if not (name or "").strip():
            return "Command: name a model first."
        try:
            args, _ = serving.compress_args(project, name, action, type_ or "")
        except SeektuneError as exc:
            return f"**Not runnable:** {exc}"
        return f"Command: `{serving.command_line(args)}`"

    ship_command = gr.Markdown("Command: name a model first.", elem_id="ship-command")
    ship_run = gr.Button("Run", variant="primary", elem_id="ship-run")
    ship_result = gr.Markdown(elem_id="ship-result")

    gr.Markdown("### Serve\nAn OpenAI-compatible server on 127.0.0.1 (`seektune serve`); it keeps running when "
                "the page closes, until stopped here.")
    serve_models = gr.Textbox(label="models to serve, comma-separated (one model, or several adapter runs of "
                              "one base)", elem_id="serve-models")
    with gr.Row():
        serve_port = gr.Number(8000, precision=0, minimum=1, maximum=65535, label="port", elem_id="serve-port")
        serve_keys = gr.Textbox(label="API key file (optional; keys also come from $SEEKTUNE_API_KEYS)",
                                elem_id="serve-keys")

    def preview_serve(names: str, port, keys: str) -> str:
        if not split_names(names or ""):
            return "Command: name a model to serve."
        try:
            args = serving.Servers.args(project, split_names(names), int(port or 0), keys.strip() or None)
        except SeektuneError as exc:
            return f"**Not runnable:** {exc}"
        return f"Command: `{serving.command_line(args)}`"

    serve_command = gr.Markdown("Command: name a model to serve.", elem_id="serve-command")
    with gr.Row():
        serve_start = gr.Button("Start server", variant="primary", elem_id="serve-start")
        serve_stop = gr.Button("Stop server on this port", elem_id="serve-stop")
        serve_refresh = gr.Button("Refresh", elem_id="serve-refresh")
    serve_message = gr.Markdown(elem_id="serve-message")
    serve_status = gr.Markdown(lambda: _servers_table(servers), elem_id="serve-status")
    serve_snippet = gr.Markdown(lambda: _snippet(project, next(iter(servers.statuses()), None)),
                                elem_id="serve-snippet")

    def types_of(action: str):
        choices = serving.TYPES.get(action, [])
        return gr.Dropdown(choices=choices, value=choices[0] if choices else None, interactive=bool(choices))

    def run(name: str, action: str, type_: str | None, models: str):
        try:
            summary, out = serving.compress(project, name, action, type_ or "")
        except SeektuneError as exc:
            return failure("Not started:", str(exc), None), models
        # the output is what one serves next: put it in the serve box
        return summary, str(out.relative_to(project.root)) if out is not None else models

    def start(names: str, port, keys: str):
        try:
            status = servers.start(project, split_names(names), int(port or 0), keys.strip() or None)
        except SeektuneError as exc:
            return failure("Not started:", str(exc), None), _servers_table(servers), ""
        return (f"Serving {', '.join(status.served)} on {status.url}", _servers_table(servers),
                _snippet(project, status))

    def stop(port):
        port = int(port or 0)
        message = f"Stopped the server on port {port}." if servers.stop(port) else \
            f"No server of this page runs on port {port}."
        return message, _servers_table(servers), ""

    def refresh(port):
        return _servers_table(servers), _snippet(project, servers.status(int(port or 0)))

    for component in (ship_model, ship_action, ship_type):   # always_last: the preview of the final value
        component.change(preview_compress, [ship_model, ship_action, ship_type], ship_command,
                         trigger_mode="always_last", show_progress="hidden")
    for component in (serve_models, serve_port, serve_keys):
        component.change(preview_serve, [serve_models, serve_port, serve_keys], serve_command,
                         trigger_mode="always_last", show_progress="hidden")
    ship_action.change(types_of, ship_action, ship_type)
    ship_run.click(run, [ship_model, ship_action, ship_type, serve_models], [ship_result, serve_models])
    serve_start.click(start, [serve_models, serve_port, serve_keys], [serve_message, serve_status, serve_snippet])
    serve_stop.click(stop, serve_port, [serve_message, serve_status, serve_snippet])
    serve_refresh.click(refresh, serve_port, [serve_status, serve_snippet])
