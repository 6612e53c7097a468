"""The Data tab's work without gradio. Every step is a `seektune data ...` or `seektune check-template` command run
in the project folder (the page shows the exact command line), never another road than the CLI; this module picks
the paths (inputs inside the project, outputs under <root>/.seektune-ui) and reads back the reports and manifests."""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import secrets
import shlex
import shutil
from pathlib import Path

import yaml

from seektune.atomic import sha256, write_text
from seektune.data.pipeline.manifest import manifest_path
from seektune.errors import ConfigError
from seektune.ui import forms
from seektune.ui.project import Project, failure, report_text, slug

DATA_SUFFIXES = (".jsonl", ".json")
STEPS = ("clean", "privacy", "leakage")
OUTPUT_NAMES = {"clean": "clean", "privacy": "pseudonymised", "leakage": "no-leaks"}
SIDE_REPORTS = (".privacy.jsonl", ".leaks.jsonl")   # privacy's findings, leakage's leaks: beside the output
SECRET_ENV = "SEEKTUNE_PRIVACY_SECRET"
MAX_FILES, MAX_ENTRIES, MAX_BAD = 200, 20_000, 20
_SKIP_DIRS = {"runs", "node_modules", "__pycache__", "site-packages", "venv"}
_MODEL_MARKERS = ("config.json", "adapter_config.json", "seektune_method.json")   # model and adapter folders
_LISTED_STATE = ("uploads", "data")                  # the parts of .seektune-ui the file list shows
_RENDER_KEYS = ("system_prompt", "train_on", "reasoning", "reasoning_field", "max_length")
_EXAMPLE_HEAD, _EXAMPLE_END = "1. a training example (supervised tokens in \u27e6 \u27e7):\n", "\n\n2. training prefix"
_MARK, _PRE = "<mark style='background:#ffe08a'>", "<pre style='white-space:pre-wrap'>"


def _files(project: Project, paths: list[str] | str, what: str) -> list[str]:
    """Existing files inside the project (comma or line separated when one string), relative to its folder."""
    names = paths.replace(",", "\n").splitlines() if isinstance(paths, str) else paths
    found = [project.inside(p.strip(), what) for p in names if p.strip()]
    if not found:
        raise ConfigError(f"choose a {what} first")
    if missing := [project.relative(path) for path in found if not path.is_file()]:
        raise ConfigError(f"{what} not found: {', '.join(missing)}")
    return [project.relative(path) for path in found]


def _publish_new(tmp: Path, target: Path) -> bool:
    """Move a finished temporary file to `target` unless it exists (a hard link never overwrites: two requests at
    once cannot replace each other's file)."""
    try:
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def save_upload(project: Project, temp_path: str | Path, name: str | None = None, run: str | None = None) -> Path:
    """Copy an upload (gradio's temporary file; `name`: the client's file name, default the temporary file's) into
    <root>/.seektune-ui/uploads (uploads/runs/<run> for a run's own data), never replacing a different file of the
    same name (a suffix is added)."""
    source = Path(temp_path)
    name = source.name if name is None else name
    if name in ("", ".", "..") or "\\" in name or Path(name).name != name:
        raise ConfigError(f"upload {name!r}: a file name without folders is expected")
    suffix = Path(name).suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise ConfigError(f"upload {name!r}: only JSON lines (.jsonl) or JSON (.json) data files are accepted")
    if not source.is_file():
        raise ConfigError(f"upload {name!r}: the uploaded file is gone; upload it again")
    stem = re.sub(r"[^\w.\- ]", "_", Path(name).stem).strip(" .") or "upload"
    folder = project.state("uploads", *(("runs", slug(run, "data")) if run else ()))
    folder.mkdir(parents=True, exist_ok=True)
    digest = sha256(source)
    for n in itertools.count():
        target = folder / (f"{stem}{suffix}" if n == 0 else f"{stem}-{n}{suffix}")
        if target.exists():
            if target.is_file() and sha256(target) == digest:
                return target                            # the same file uploaded again
            continue
        tmp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
        shutil.copyfile(source, tmp)
        if _publish_new(tmp, target):
            return target
    raise AssertionError("unreachable")


def _listed_dir(path: Path, state: Path) -> bool:
    if path == state or state in path.parents:
        return path.parent != state or path.name in _LISTED_STATE
    return not (path.name.startswith(".") or path.name in _SKIP_DIRS or (path / "pyvenv.cfg").exists()
                or any((path / marker).is_file() for marker in _MODEL_MARKERS))   # a model's JSON is not data


def data_files(project: Project, limit: int = MAX_FILES) -> list[str]:
    """The project's data files relative to its folder (uploads and step outputs; no environments, runs or hidden
    folders): at most `limit`, from at most MAX_ENTRIES directory entries, so a huge folder cannot hang the page."""
    found: list[str] = []
    seen = 0
    for folder, dirs, files in os.walk(project.root):
        here = Path(folder)
        seen += len(dirs) + len(files)
        dirs[:] = sorted(d for d in dirs if _listed_dir(here / d, project.state()))
        for name in sorted(files):
            if name.lower().endswith(DATA_SUFFIXES) and not name.endswith(".manifest.json") \
                    and not name.startswith(".") and (here / name).resolve().is_relative_to(project.root):
                found.append((here / name).relative_to(project.root).as_posix())
                if len(found) >= limit:
                    return found
        if seen >= MAX_ENTRIES:
            break
    return found


def _tokenizer_arg(project: Project, name: str) -> str:
    """deepseek / none / a packaged name pass as they are; anything path-like must be inside the project."""
    name = name.strip() or "none"
    run_dir = project.jobs.run_dir(name)
    if run_dir is not None:                              # a run of the page: its saved tokenizer
        return project.relative(project.inside(str(run_dir / "final"), "tokenizer"))
    return project.relative(project.inside(name, "tokenizer")) if forms.is_path(project.root, name) else name


def _every_bad_record(project: Project, rel: str, limit: int) -> list[str]:
    """`file:line: reason` of the first `limit` bad records, through seektune's own reader and record check: the
    manifest keeps only the first place of each reason."""
    from seektune.data.jsonio import Tally, read_records
    from seektune.data.pipeline.fields import validate

    places: list[str] = []

    class Every(Tally):
        def remove(self, reason: str, where: str = "", n: int = 1, detail: str = "") -> None:
            super().remove(reason, where, n, detail)
            places.append(f"{where}: {detail or reason}")

    for _ in read_records([project.root / rel], Every(), "skip", validate=validate):
        if len(places) >= limit:
            break
    return [p.removeprefix(str(project.root) + os.sep) for p in places[:limit]]


def _after_file(place: str, rel: str) -> str:
    """`7: reason` of a `file:7: reason` place (the file's own name may hold ': ')."""
    return place[place.index(rel) + len(rel) + 1:] if rel in place else place.split(":", 1)[-1]


def _line_of(place: str, rel: str) -> int:
    head = _after_file(place, rel).split(":", 1)[0].strip()
    return int(head) if head.isdigit() else 0


def _reason_of(place: str, rel: str) -> str:
    return _after_file(place, rel).split(":", 1)[-1].strip()


def inspect(project: Project, path: str, tokenizer: str):
    """`seektune data inspect --on-error skip` on a project file: (summary: format, records, bad records with
    file:line; the report markdown without its image line; the token-length histogram or None)."""
    from PIL import Image

    rel = _files(project, [path], "data file")[0]
    out = project.state("inspect", slug(rel, "data"))
    histogram = out / "token_lengths.png"
    histogram.unlink(missing_ok=True)                    # never show the last run's plot for this one
    ok, output = project.command("data", "inspect", rel, "--out-dir", project.relative(out), "--tokenizer",
                                 _tokenizer_arg(project, tokenizer), "--on-error", "skip")
    if not ok:
        return failure("Inspection failed:", output), "", None
    summary = json.loads((out / "inspect.json").read_text(encoding="utf-8"))
    counts = json.loads(manifest_path(out / "inspect.json").read_text(encoding="utf-8"))["steps"][-1]["counts"]
    bad_total = sum(n for reason, n in counts.get("removed", {}).items() if reason.startswith("bad input"))
    first = [v for reason, v in counts.get("first_seen", {}).items() if reason.startswith("bad input")]
    bad = (sorted(first, key=lambda p: _line_of(p, rel)) if bad_total == len(first)
           else _every_bad_record(project, rel, MAX_BAD))
    formats = summary.get("formats") or {}
    detected = (next(iter(formats)) if len(formats) == 1 else "none (no readable record)" if not formats else
                "mixed: " + ", ".join(f"{k} {v}" for k, v in formats.items()))
    lines = [f"**{rel}**: format **{detected}**, **{summary.get('records', 0)}** records, **{bad_total}** bad records"
             + (" (skipped here; tick *skip bad records* to skip them in a step too)" if bad_total else "")]
    lines += [f"- `{rel}:{_line_of(place, rel)}` {_reason_of(place, rel)}" for place in bad]
    lines += [f"- ... {bad_total - len(bad)} more"] if bad_total > len(bad) else []
    plot = Image.open(histogram).copy() if histogram.is_file() else None
    return "\n".join(lines), report_text(out / "inspect.md"), plot


def render_example(project: Project, path: str, model: str, records: int = 4) -> str:
    """`seektune check-template` on the smallest config naming this file (a run's own model and rendering settings,
    or a model; deepseek: the packaged DeepSeek tokenizer and template, in tiny-deepseek-v3), as HTML: the first
    record rendered with the chat template, supervised tokens highlighted, the checks of the first `records`."""
    source, name = _files(project, [path], "data file")[0], model.strip()
    if name in ("", "none"):
        return "<p>Name a model (deepseek, a packaged model, a model folder, a run) to render an example.</p>"
    run_dir, model_section, data = project.jobs.run_dir(name), None, {}
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        model_section, data = saved["model"], {k: v for k, v in saved["data"].items() if k in _RENDER_KEYS}
    model_section = model_section or {"name_or_path": "tiny-deepseek-v3" if name == "deepseek" else
                                      project.model_ref(name)}
    tree = {"model": model_section, "data": {**data, "train": [str(project.root / source)], "on_error": "skip"},
            "output": {"dir": str(project.state("data", "check-template", "runs")), "name": "example"}}
    forms.check(tree)                                    # a wrong key is named before anything runs
    config = project.state("data", "check-template", f"{slug(source, 'data')}.yaml")
    write_text(config, yaml.safe_dump(tree, sort_keys=False, allow_unicode=True))
    ok, output = project.command("check-template", project.relative(config), "--records", str(records))
    if _EXAMPLE_HEAD not in output:
        return f"<p><b>No example rendered:</b></p>{_PRE}{html.escape(output[-3000:])}</pre>"
    example, _, checks = output.split(_EXAMPLE_HEAD, 1)[1].partition(_EXAMPLE_END)
    marked = html.escape(example).replace("\u27e6", _MARK).replace("\u27e7", "</mark>")
    return ("" if ok else "<p><b>check-template found problems (below)</b></p>") + \
        (f"<p>The first record as training renders it; {_MARK}highlighted</mark> tokens are supervised (the loss "
         f"trains on them).</p>{_PRE}{marked}</pre>{_PRE}{html.escape(_EXAMPLE_END.strip() + checks)}</pre>")


def privacy_key(project: Project, key_file: str = "") -> tuple[list[str], str]:
    """The privacy step's key: a key file inside the project, else $SEEKTUNE_PRIVACY_SECRET, else a key the UI
    generates once and keeps; pseudonyms stay the same across runs only while the key does."""
    if key_file.strip():
        rel = _files(project, [key_file], "key file")[0]
        return ["--secret-file", rel], f"key: `{rel}`"
    if os.environ.get(SECRET_ENV):
        return [], f"key: ${SECRET_ENV} of the UI's environment"
    path = project.state("keys", "privacy.key")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".privacy.key.{secrets.token_hex(4)}.tmp")
        write_text(tmp, secrets.token_hex(32) + "\n")
        os.chmod(tmp, 0o600)
        _publish_new(tmp, path)                          # another request made it first: keep that one
    return ["--secret-file", project.relative(path)], (
        f"key: `{project.relative(path)}`, made by the UI and kept: every run with it gives the same pseudonyms. Keep "
        "it private (with it anyone can test a guessed phone or e-mail) and back it up; --secret-file or "
        f"${SECRET_ENV} with it pseudonymises other files the same way.")


def _option_flags(project: Project, options: dict, allowed: tuple[str, ...]) -> list[str]:
    """Options as the step's own flags (name -> --name, True -> the bare flag); a model must be in the project."""
    flags: list[str] = []
    for key, value in options.items():
        if key not in allowed:
            raise ConfigError(f"unknown option {key!r}; one of: {', '.join(allowed)}")
        if key in ("tokenizer", "perplexity_model") and value:
            value = _tokenizer_arg(project, str(value))
        for v in value if isinstance(value, (list, tuple)) else [value]:   # id_field may repeat
            if not (v is None or v is False or v == ""):
                flags += [f"--{key.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return flags


def step_files(output: Path) -> list[Path]:
    """What a step's download holds: the output JSONL, its manifest and the step's side report."""
    return [p for p in (output, manifest_path(output), *(output.with_name(output.name + s) for s in SIDE_REPORTS))
            if p.is_file()]


def _report(project: Project, step: str, command: str, output: Path, note: str) -> str:
    entry = json.loads(manifest_path(output).read_text(encoding="utf-8"))["steps"][-1]
    counts = entry.get("counts") or {}
    lines = [f"**{step}**: {counts.get('in', 0)} records in, {counts.get('out', 0)} out -> "
             f"`{project.relative(output)}`"]
    for reason, n in sorted(counts.get("removed", {}).items(), key=lambda kv: -kv[1]):
        first = counts.get("first_seen", {}).get(reason)
        lines.append(f"- removed {n} x {reason}" + (f" (first at `{first.split(': ', 1)[0]}`)" if first else ""))
    lines += {"privacy": [f"- replaced: {entry.get('replaced') or 'nothing'}; key fingerprint "
                          f"`{entry.get('secret_fingerprint')}`"],
              "leakage": [f"- leaks: {entry.get('leaks') or 'none'} (test records: {entry.get('test_records')})"]
              }.get(step, []) + ([f"- {note}"] if note else [])
    return "\n".join(lines + [
        "", f"Files: {', '.join(f'`{p.name}`' for p in step_files(output))} (sha256 of the output in the manifest: "
        f"`{entry['outputs'][0]['sha256'][:16]}...`)", "", f"Command (in `{project.root}`):", "```", command, "```"])


def run_step(project: Project, step: str, inputs: list[str], options: dict | None = None
             ) -> tuple[str, Path | None, Path | None]:
    """`seektune data <step>` on project files into <root>/.seektune-ui/data/<step>/: (report with the command line,
    output JSONL, its manifest), or (failure report, None, None). Options: skip_bad; clean: CleanOptions fields;
    privacy: key_file, id_field; leakage: test (required), near_threshold, remove_entity_overlap."""
    if step not in STEPS:
        raise ConfigError(f"unknown step {step!r}; one of: {', '.join(STEPS)}")
    options = dict(options or {})
    sources = _files(project, inputs, "data file")
    stem = slug(str(Path(sources[0]).with_suffix("")).replace("/", "-"), "data")   # a/train, b/train stay apart
    output = project.state("data", step, f"{stem}.{OUTPUT_NAMES[step]}.jsonl")
    output.parent.mkdir(parents=True, exist_ok=True)
    args = ["data", step, *sources, "-o", project.relative(output)] + \
        (["--on-error", "skip"] if options.pop("skip_bad", False) else [])
    note = ""
    if step == "clean":
        from seektune.data.pipeline.run_quality import CleanOptions

        args += _option_flags(project, options, tuple(CleanOptions.model_fields))
    elif step == "privacy":
        flags, note = privacy_key(project, str(options.pop("key_file", "") or ""))
        args += flags + _option_flags(project, options, ("id_field",))
    else:
        tests = _files(project, options.pop("test", None) or [], "test file (the evaluation data to check against)")
        args += ["--test", *tests, *_option_flags(project, options, ("near_threshold", "remove_entity_overlap"))]
    command = shlex.join(["seektune", *args])
    ok, out = project.command(*args)
    if not ok:
        hint = "\n\nTick *skip bad records* to skip and count them." if "--on-error skip" in out else ""
        return (failure(f"seektune data {step} failed:", out) + hint +
                f"\n\nCommand (in `{project.root}`):\n```\n{command}\n```"), None, None
    return _report(project, step, command, output, note), output, manifest_path(output)
