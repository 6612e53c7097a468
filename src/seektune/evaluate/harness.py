"""Standard benchmarks (MMLU, CMMLU, C-Eval, ...) through lm-evaluation-harness, on the model seektune
loaded (adapters included), with task data the user has locally (`harness.include_path` for task YAMLs
that point at local files; nothing is downloaded here)."""

from __future__ import annotations

from seektune.errors import ConfigError


def run_harness(model, tokenizer, tasks: list[str], include_path: str | None, limit: int | None,
                num_fewshot: int | None, batch_size: int = 4) -> dict[str, float]:
    """{"task/metric": value} for every numeric metric lm-eval reports (stderr entries dropped)."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ConfigError("harness.tasks needs lm-evaluation-harness: pip install 'seektune[harness]'") from None
    manager = TaskManager(include_path=include_path) if include_path else TaskManager()
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ConfigError(f"harness.tasks: unknown to lm-eval {unknown}; put local task YAMLs in "
                          "harness.include_path")
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))
    results = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit, num_fewshot=num_fewshot,
                              log_samples=False, bootstrap_iters=0)
    out: dict[str, float] = {}
    for task, metrics in results["results"].items():
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and "stderr" not in key and key != "alias":
                out[f"{task}/{key.split(',')[0]}"] = float(value)
    return out
