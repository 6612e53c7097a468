"""seektune recipe RECIPE.yaml [name=value ...] [--from STAGE] [--only STAGE ...]: a whole road in one command."""

from __future__ import annotations

from pathlib import Path


def run(args) -> None:
    from seektune.recipe.config import load, parse_assignments
    from seektune.recipe.runner import RecipeRun, timing_table

    path = Path(args.recipe)
    values = parse_assignments(args.vars)
    if "work" in values:   # a folder given on the command line is relative to where the user is
        values["work"] = str(Path(values["work"]).resolve())
    recipe = load(path, values)
    road = RecipeRun(recipe)
    road.run(start=args.start, only=args.only)
    print(f"\n{timing_table(recipe, road.work)}\n\nwork: {road.work}")


def register(sub) -> None:
    p = sub.add_parser("recipe", help="run a recipe: data, train, evaluate, compress and serve stages in order, "
                       "resumable", description="Run every stage of a recipe YAML in order, each in its own process; "
                       "finished stages are skipped when it is run again.")
    p.add_argument("recipe", help="recipe YAML (e.g. examples/legal/recipe.yaml)")
    p.add_argument("vars", nargs="*", metavar="name=value", help="recipe variables, e.g. model=... work=DIR")
    p.add_argument("--from", dest="start", metavar="STAGE", help="redo this stage and every one after it")
    p.add_argument("--only", nargs="+", metavar="STAGE", help="run only these stages (in recipe order)")
    p.set_defaults(func=run)
