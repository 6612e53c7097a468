"""From stored rows to the numbers in the report: task metrics per model, robustness drops, forgetting
deltas, the weighted scorecard, and the worst examples."""

from __future__ import annotations

from seektune.evaluate import continual
from seektune.evaluate.eval_config import MEASURED
from seektune.evaluate.scoring import aggregate, lower_is_better, primary_metric

MEASUREMENT_KEYS = {"perplexity": ("perplexity", "nll_per_token", "tokens"),
                    "retrieval": ("image_to_text_recall@1", "image_to_text_recall@5", "text_to_image_recall@1",
                                  "text_to_image_recall@5", "image_to_text_mean_rank", "images", "candidates", "by")}

def collect(runner) -> dict:
    cfg, store = runner.cfg, runner.store
    models = [m.name for m in cfg.models]
    baseline = cfg.forgetting.baseline or models[0]
    tasks: dict = {}
    for task in cfg.tasks:
        entry = {"type": task.type, "general": task.general, "models": {}}
        if task.type in MEASURED:
            entry["primary"] = primary_metric(task, False)
            for m in cfg.models:
                row = store.measurement(m.name, f"{task.type}:{task.name}", runner.task_fp(m, task))
                if row:
                    entry["models"][m.name] = {"clean": {k: row[k] for k in MEASUREMENT_KEYS[task.type]}}
            tasks[task.name] = entry
            continue
        examples = runner.examples[task.name]
        entry["primary"] = primary_metric(task, any(e.key_fact for e in examples))
        for m in cfg.models:
            fp = runner.task_fp(m, task)
            per_variant = {}
            for variant in runner.variants(task):
                rows = [store.prediction(m.name, task.name, variant, e.index, fp) for e in examples]
                if all(rows):
                    per_variant[variant] = aggregate(task, examples, rows)
            if per_variant:
                entry["models"][m.name] = per_variant
        tasks[task.name] = entry
    efficiency = {m.name: row for m in cfg.models
                  if (row := store.measurement(m.name, "efficiency", runner.efficiency_fp(m)))}
    benchmarks = {m.name: row["scores"] for m in cfg.models
                  if (row := store.measurement(m.name, "harness", runner.harness_fp(m)))}
    result = {"models": models, "baseline": baseline, "tasks": tasks, "efficiency": efficiency,
              "benchmarks": benchmarks}
    result["robustness"] = robustness(tasks)
    result["forgetting"] = forgetting(tasks, baseline, cfg.forgetting.threshold)
    result["scorecard"] = scorecard(result, cfg.scorecard)
    result["worst_examples"] = worst_examples(runner, baseline)
    result["continual"] = continual.collect(tasks, cfg.continual)
    return result


def robustness(tasks: dict) -> dict:
    """Per model and task: primary metric on clean and typo inputs, and the drop."""
    out: dict = {}
    for name, t in tasks.items():
        for model, variants in t["models"].items():
            if "typo" in variants:
                clean, typo = variants["clean"][t["primary"]], variants["typo"][t["primary"]]
                out.setdefault(model, {})[name] = {"metric": t["primary"], "clean": clean, "typo": typo,
                                                   "drop": clean - typo}
    return out


def forgetting(tasks: dict, baseline: str, threshold: float) -> dict:
    """General tasks: every metric of every model against the baseline; relative change, flagged past threshold."""
    out: dict = {}
    for name, t in tasks.items():
        if not t["general"] or baseline not in t["models"]:
            continue
        before = t["models"][baseline]["clean"]
        for model, variants in t["models"].items():
            if model == baseline:
                continue
            for metric, old in before.items():
                new = variants["clean"].get(metric)
                if not isinstance(old, (int, float)) or not isinstance(new, (int, float)) or \
                        metric in ("examples", "tokens", "images", "candidates"):
                    continue
                change = (new - old) / abs(old) if old else float(new != old) * (1.0 if new > old else -1.0)
                worse = change > threshold if lower_is_better(metric) else -change > threshold
                out.setdefault(model, {}).setdefault(name, {})[metric] = {
                    "before": old, "after": new, "delta": new - old, "relative": change, "flagged": bool(worse)}
    return out


def scorecard(result: dict, weights: dict[str, float]) -> dict:
    """Each dimension 0-1 per model; combined with the weights renormalised over the dimensions measured."""
    tasks, models = result["tasks"], result["models"]
    dims: dict[str, dict[str, float]] = {m: {} for m in models}
    for m in models:
        quality = [t["models"][m]["clean"][t["primary"]] for t in tasks.values()
                   if not t["general"] and t["type"] != "perplexity" and m in t["models"]]
        if quality:
            dims[m]["quality"] = sum(quality) / len(quality)
        rob = result["robustness"].get(m, {})
        if rob:
            dims[m]["robustness"] = sum(min(1.0, r["typo"] / r["clean"]) if r["clean"] else 1.0
                                        for r in rob.values()) / len(rob)
    speeds = {m: e["tokens_per_s"] for m, e in result["efficiency"].items()}
    for m, s in speeds.items():
        dims[m]["efficiency"] = s / max(speeds.values())
    general = [n for n, t in tasks.items() if t["general"]]
    for m in models:
        if not general:
            break
        if m == result["baseline"]:
            dims[m]["retention"] = 1.0
            continue
        drops = []
        for task_name, metrics in result["forgetting"].get(m, {}).items():
            primary = tasks[task_name]["primary"]
            if primary in metrics:
                relative = metrics[primary]["relative"]
                drops.append(relative if lower_is_better(primary) else -relative)
        dims[m]["retention"] = max(0.0, 1.0 - max([0.0, *drops]))
    total_weight = {m: sum(weights.get(d, 0) for d in dims[m]) for m in models}
    return {"weights": weights,
            "models": {m: {"dimensions": dims[m],
                           "score": (sum(weights.get(d, 0) * v for d, v in dims[m].items()) / total_weight[m])
                           if total_weight[m] else None} for m in models}}


def worst_examples(runner, baseline: str, limit: int = 8) -> list[dict]:
    """Largest drops of the primary per-example score against the baseline (or the lowest scores when one
    model is evaluated), so a person can read what went wrong."""
    rows = []
    for task in runner.cfg.tasks:
        if task.type in MEASURED:
            continue
        examples = runner.examples[task.name]
        metric = primary_metric(task, any(e.key_fact for e in examples))
        metric = "correct" if metric == "accuracy" else metric
        base_entry = next(m for m in runner.cfg.models if m.name == baseline)
        for m in runner.cfg.models:
            if m.name == baseline and len(runner.cfg.models) > 1:
                continue
            for e in examples:
                mine = runner.store.prediction(m.name, task.name, "clean", e.index, runner.task_fp(m, task))
                base = runner.store.prediction(baseline, task.name, "clean", e.index, runner.task_fp(base_entry, task))
                if not mine or metric not in mine["scores"]:
                    continue
                base_score = base["scores"].get(metric, 0.0) if base and m.name != baseline else 1.0
                rows.append({"model": m.name, "task": task.name, "index": e.index, "metric": metric,
                             "change": mine["scores"][metric] - base_score, "question": e.question,
                             "reference": e.reference, "baseline_answer": base["prediction"] if base else "",
                             "answer": mine["prediction"]})
    rows.sort(key=lambda r: r["change"])
    return [r for r in rows if r["change"] < 0][:limit]


def summary_lines(result: dict) -> list[str]:
    """What `seektune eval` prints: each model's score and any forgetting flags."""
    card = result["scorecard"]["models"]
    lines = [f"{name:20s} score {card[name]['score']:.4f}" if card[name]["score"] is not None
             else f"{name:20s} score -" for name in result["models"]]
    flagged = [f"{m}/{t}/{k}" for m, ts in result["forgetting"].items() for t, ks in ts.items()
               for k, d in ks.items() if d["flagged"]]
    if flagged:
        lines.append(f"forgetting flagged: {', '.join(flagged)}")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for name, r in (result.get("continual") or {}).items():
        lines.append(f"continual {name}: average {r['metric']} {fmt(r['average_accuracy'])}, forgetting "
                     f"{fmt(r['average_forgetting'])}, BWT {fmt(r['bwt'])}, FWT {fmt(r['fwt'])}")
    return lines
