"""The continual-learning view of an evaluation: for a sequence of models that learnt task 1, then 2, ..., T,
every task's score after every stage (R[i][j]: the model of stage i on task j), and from it

  average accuracy     mean_j R[T][j]                              (all tasks, after the last stage)
  average forgetting   mean_{j<T} max_{l<T} R[l][j] - R[T][j]      (the best a task ever was, minus now)
  backward transfer    mean_{j<T} R[T][j] - R[j][j]                (negative: later tasks erased earlier ones)
  forward transfer     mean_{j>1} R[j-1][j] - b_j                  (b = the base model's score, before any stage)

as defined by Chaudhry et al. (2018, forgetting) and Lopez-Paz & Ranzato (2017, GEM: BWT, FWT).
"""

from __future__ import annotations

import re
from pathlib import Path


def _score(tasks: dict, model: str, task: str, metric: str | None) -> float | None:
    entry = tasks.get(task, {})
    clean = entry.get("models", {}).get(model, {}).get("clean")
    if clean is None:
        return None
    value = clean.get(metric or entry["primary"])
    return float(value) if isinstance(value, (int, float)) else None


def sequence_report(tasks: dict, stages: list, base: str | None, metric: str | None) -> dict:
    names = list(dict.fromkeys(s.task for s in stages))
    matrix = [[_score(tasks, s.model, t, metric) for t in names] for s in stages]
    learnt = {s.task: i for i, s in enumerate(stages)}   # the stage that (last) learnt each task
    last = matrix[-1]
    earlier = [t for t in names if learnt[t] < len(stages) - 1]
    col = {t: j for j, t in enumerate(names)}

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    forgetting = {t: (max(matrix[i][col[t]] for i in range(learnt[t], len(stages) - 1)) - last[col[t]])
                  if None not in [last[col[t]], *[matrix[i][col[t]] for i in range(learnt[t], len(stages) - 1)]]
                  else None for t in earlier}
    bwt = [last[col[t]] - matrix[learnt[t]][col[t]] if None not in (last[col[t]], matrix[learnt[t]][col[t]])
           else None for t in earlier]
    fwt = None
    if base is not None:
        gains = []
        for i, s in enumerate(stages[1:], start=1):
            before, b = matrix[i - 1][col[s.task]], _score(tasks, base, s.task, metric)
            gains.append(before - b if None not in (before, b) else None)
        fwt = mean(gains)
    return {"tasks": names, "stages": [{"model": s.model, "task": s.task} for s in stages],
            "metric": metric or "primary", "matrix": matrix, "average_accuracy": mean(last),
            "forgetting": forgetting, "average_forgetting": mean(forgetting.values()), "bwt": mean(bwt),
            "fwt": fwt, "base": base,
            "base_scores": [_score(tasks, base, t, metric) for t in names] if base else None}


def collect(tasks: dict, cfg) -> dict:
    return {name: sequence_report(tasks, stages, cfg.base, cfg.metric)
            for name, stages in cfg.sequences.items()}


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(report: dict) -> list[str]:
    if not report:
        return []
    lines = ["", "## Continual learning", "",
             "R[i][j]: the score on task j after stage i. Forgetting: the best score a task had, minus its last; "
             "BWT: last minus just after learning it; FWT: before learning it minus the base model.", "",
             "| sequence | metric | average accuracy | average forgetting | BWT | FWT |", "|---|---|---|---|---|---|"]
    for name, r in report.items():
        lines.append(f"| {name} | {r['metric']} | {_fmt(r['average_accuracy'])} | {_fmt(r['average_forgetting'])} | "
                     f"{_fmt(r['bwt'])} | {_fmt(r['fwt'])} |")
    for name, r in report.items():
        lines += ["", f"### {name}", "", "| after stage | " + " | ".join(r["tasks"]) + " |",
                  "|---|" + "---|" * len(r["tasks"])]
        if r["base_scores"] is not None:
            lines.append(f"| {r['base']} (before) | " + " | ".join(_fmt(v) for v in r["base_scores"]) + " |")
        for stage, row in zip(r["stages"], r["matrix"]):
            lines.append(f"| {stage['model']} (learnt {stage['task']}) | " + " | ".join(_fmt(v) for v in row) + " |")
    return lines


def heatmaps(report: dict, out: Path) -> list[str]:
    """One heat-map per sequence: stages down, tasks across, the score in each cell."""
    if not report:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "charts").mkdir(parents=True, exist_ok=True)
    written = []
    for name, r in report.items():
        rows = ([[v if v is not None else float("nan") for v in r["base_scores"]]] if r["base_scores"] else []) + \
            [[v if v is not None else float("nan") for v in row] for row in r["matrix"]]
        labels = ([f"{r['base']} (before)"] if r["base_scores"] else []) + \
            [f"{s['model']} ({s['task']})" for s in r["stages"]]
        fig, ax = plt.subplots(figsize=(1.4 * len(r["tasks"]) + 2.5, 0.55 * len(rows) + 1.4))
        image = ax.imshow(rows, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(r["tasks"])), r["tasks"])
        ax.set_yticks(range(len(labels)), labels)
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                ax.text(j, i, "-" if v != v else f"{v:.2f}", ha="center", va="center",
                        color="white" if v == v and v < 0.6 else "black", fontsize=9)
        ax.set_title(f"{name}: {r['metric']} after each stage")
        fig.colorbar(image, ax=ax, fraction=0.046)
        fig.tight_layout()
        file = "charts/continual__" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".png"
        fig.savefig(out / file, dpi=100)
        plt.close(fig)
        written.append(file)
    return written
