"""seektune chat RUN_OR_MODEL [RUN ...]: one answer (--prompt) or an interactive session."""

from __future__ import annotations


def run(args) -> None:
    from seektune.inference.session import ChatSession
    from seektune.runtime import set_threads

    set_threads()
    session = ChatSession.open(args.model, use=args.use, system=args.system, max_new_tokens=args.max_new_tokens,
                               temperature=args.temperature, max_thinking_tokens=args.max_thinking_tokens)
    if session.active:
        print(f"adapter: {session.active}", flush=True)
    if args.image and args.prompt is None:
        raise SystemExit("--image goes with --prompt (one question about the image)")
    if args.prompt is not None:
        answer = session.ask(args.prompt, images=args.image)
        if session.last_reasoning:
            print(f"[reasoning] {session.last_reasoning}\n[answer]")
        print(answer)
        return
    print("chat: empty line or Ctrl-D quits, /reset clears the history, /adapter NAME switches adapters")
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        if line.startswith("/"):
            print(session.command(line), flush=True)
            continue
        print("model> ", end="", flush=True)
        session.ask(line, stream=True)


def register(sub) -> None:
    p = sub.add_parser("chat", help="talk to a run, an adapter, a model directory or a packaged model",
                       description="Interactive chat, or one answer with --prompt.")
    p.add_argument("model", nargs="+", help="run directory, final/ adapter or model directory, or packaged name; "
                   "several adapter runs of one base load side by side (switch with /adapter NAME)")
    p.add_argument("--use", help="with several adapters: the one to start with (its run directory name)")
    p.add_argument("--prompt", help="answer this one prompt and exit")
    p.add_argument("--image", action="append", default=[], metavar="FILE",
                   help="vision-language models: an image for --prompt (repeat for several)")
    p.add_argument("--system", help="system message")
    p.add_argument("--max-new-tokens", type=int, default=256, help="generation length limit")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--max-thinking-tokens", type=int, default=None,
                   help="reasoning models: tokens the reasoning may use before </think> is written for it (the "
                   "answer then gets --max-new-tokens)")
    p.set_defaults(func=run)
