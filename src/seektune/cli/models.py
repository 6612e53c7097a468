"""seektune models: what can be loaded offline."""

from __future__ import annotations


def run(args) -> None:
    from seektune.models.registry import PACKAGED

    for m in PACKAGED.values():
        state = "cached" if (m.cached_dir() / "config.json").is_file() else (
            "available" if m.available() else "not installed")
        print(f"{m.name:30s} {state:14s} {m.description}\n{'':45s} needs: {m.requirement}")
    print("\nAlso: any local Hugging Face model directory, or a hub id already in the HF cache.")


def register(sub) -> None:
    p = sub.add_parser("models", help="list the models seektune can load offline",
                       description="List packaged models and whether they are installed or cached.")
    p.set_defaults(func=run)
