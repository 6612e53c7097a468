"""seektune drop-layers MODEL --keep 0-28:2 --out DIR: a smaller model with only some decoder layers (the start of
a distillation student)."""

from __future__ import annotations

from pathlib import Path


def run(args) -> None:
    from seektune.artifacts import open_artifact, write_artifact
    from seektune.errors import ConfigError
    from seektune.models.layer_drop import drop_layers
    from seektune.models.layers import decoder_layers, trainable_summary
    from seektune.schema import parse_layers

    artifact = open_artifact(args.model)
    if artifact.kind.attach is not None and not artifact.mergeable:
        raise ConfigError(f"{args.model}: {artifact.method} cannot be merged into its base; drop layers of a whole "
                          "model or a LoRA-family / IA3 adapter")
    model, tokenizer = artifact.load()
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    try:
        keep = parse_layers(args.keep)
    except ValueError as exc:
        raise ConfigError(f"--keep: {exc}") from None
    before, n = trainable_summary(model)[1], len(decoder_layers(model))
    drop_layers(model, keep)
    after = trainable_summary(model)[1]
    out = write_artifact(Path(args.out), lambda tmp: model.save_pretrained(tmp), tokenizer,
                         {"method": "drop-layers", "mergeable": False, "dropped_from": str(artifact.path),
                          "kept_layers": keep})
    print(f"kept {len(keep)} of {n} layers ({', '.join(map(str, keep))}): {before:,} -> {after:,} parameters\n"
          f"model: {out}")


def register(sub) -> None:
    p = sub.add_parser("drop-layers", help="keep some decoder layers of a model (a distillation student's start)",
                       description="Write a plain transformers model with only the given decoder layers, "
                       "renumbered (KV-cache index, config), e.g. every other one: --keep 0-28:2. Adapters are "
                       "merged first.")
    p.add_argument("model", help="run directory, model or adapter directory, or packaged name")
    p.add_argument("--keep", required=True, help="layers to keep: '0-28:2' (every other), '0-11', '0-3, 8'")
    p.add_argument("--out", required=True, help="output model directory")
    p.set_defaults(func=run)
