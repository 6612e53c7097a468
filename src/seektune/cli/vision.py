"""seektune vision assemble: a LLaVA-style vision-language model from a text model and a vision tower."""

from __future__ import annotations


def assemble(args) -> None:
    from pathlib import Path

    from seektune.artifacts import write_artifact
    from seektune.models.vision_build import NewTower, assemble_llava
    from seektune.runtime import set_threads

    set_threads()
    tower = NewTower(args.image_size, args.patch_size, args.vision_hidden, args.vision_layers, args.vision_heads)
    model, processor = assemble_llava(args.text, args.vision, tower, args.seed, args.class_token)
    info = {"method": "assembled", "text_model": args.text, "vision_tower": args.vision or "new (random)"}
    out = write_artifact(Path(args.out), lambda tmp: model.save_pretrained(str(tmp)), processor.tokenizer, info,
                         processor=processor)
    vision = model.config.vision_config
    print(f"assembled {out}: {type(model).__name__}, text {args.text}, vision tower "
          f"{args.vision or 'new'} ({vision.num_hidden_layers} layers, {vision.image_size}px images in "
          f"{vision.patch_size}px patches), {sum(p.numel() for p in model.parameters()):,} parameters\n"
          f"train it with model.name_or_path: {out}")


def register(sub) -> None:
    p = sub.add_parser("vision", help="vision-language models: assemble one from a text model",
                       description="Vision-language models.")
    verbs = p.add_subparsers(dest="vision_command", required=True)
    a = verbs.add_parser("assemble", help="a LLaVA model from a text model and a CLIP/SigLIP vision tower",
                         description="Join a text model, a vision tower (a CLIP/SigLIP directory, or a new one "
                         "trained from scratch) and a new projector into a LlavaForConditionalGeneration directory "
                         "with its processor.")
    a.add_argument("--text", required=True, help="the text model: packaged name or model directory")
    a.add_argument("--vision", help="a CLIP or SigLIP model directory (default: a new tower of the size below)")
    a.add_argument("--out", required=True, help="the directory to write")
    a.add_argument("--image-size", type=int, default=16, help="new tower: image side in pixels")
    a.add_argument("--patch-size", type=int, default=4, help="new tower: patch side in pixels")
    a.add_argument("--vision-hidden", type=int, default=64, help="new tower: hidden size")
    a.add_argument("--vision-layers", type=int, default=2, help="new tower: transformer layers")
    a.add_argument("--vision-heads", type=int, default=4, help="new tower: attention heads")
    a.add_argument("--class-token", choices=["drop", "keep"], default="drop",
                   help="CLIP towers: pass the class token to the projector with the patches (keep: the token "
                   "objective clip aligns, so the language model sees the aligned feature) or only the patches "
                   "(drop: LLaVA's default); SigLIP has none")
    a.add_argument("--seed", type=int, default=0, help="seed of the new weights (projector, new tower)")
    a.set_defaults(func=assemble)
