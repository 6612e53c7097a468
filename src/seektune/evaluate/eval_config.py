"""The typed config of `seektune eval`: which models, which tasks, and how to score and report them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from seektune import config
from seektune.schema import Section, beside

TaskType = Literal["generation", "classification", "citation", "perplexity", "retrieval"]
# tasks scored once per model (a measurement), not answer by answer
MEASURED = ("perplexity", "retrieval")


class ModelEntry(Section):
    name: str = Field(description="label in the report, e.g. base, tuned, merged, int8")
    path: str = Field(description="run directory, adapter or model directory, or packaged model name")


class TaskConfig(Section):
    name: str = Field(description="task name in the report")
    type: TaskType = Field("generation", description="generation | classification | citation | perplexity | "
                           "retrieval (image-text recall@1/5 both ways; vision-language models)")
    data: str = Field(description="JSONL: alpaca/sharegpt/openai records (last answer = reference), "
                      "{question, reference[, key_fact | label][, image]} or image-caption pairs {image, text}")
    system_prompt: str | None = Field(None, description="system message for every prompt")
    limit: int = Field(0, ge=0, description="use only the first N examples (0 = all)")
    labels: list[str] = Field(default_factory=list, description="classification: the label set")
    label_pattern: str | None = Field(None, description="classification: regex whose first group is the label")
    label_aliases: dict[str, str] = Field(default_factory=dict, description="classification: word -> label")
    high_risk: str | None = Field(None, description="classification: the label whose recall is reported")
    general: bool = Field(False, description="a general-ability task: used for the forgetting check")
    retrieval_by: Literal["auto", "alignment", "likelihood"] = Field(
        "auto", description="retrieval: score image-text pairs in the joint space a clip run saved "
        "(alignment), by the model's log-probability of the caption (likelihood), or alignment where saved (auto)")
    score_reasoning: bool = Field(False, description="reasoning models: also score the reasoning against the "
                                  "reference's (the answer alone is scored by default)")

    @model_validator(mode="after")
    def _labels(self) -> "TaskConfig":
        if self.type == "classification" and not self.labels:
            raise ValueError(f"task {self.name}: classification needs labels")
        if self.retrieval_by != "auto" and self.type != "retrieval":
            raise ValueError(f"task {self.name}: retrieval_by applies to retrieval tasks, not {self.type}")
        if self.high_risk and self.high_risk not in self.labels:
            raise ValueError(f"task {self.name}: high_risk {self.high_risk!r} is not one of labels {self.labels}")
        return self


class GenerationConfig(Section):
    max_new_tokens: int = Field(64, gt=0, description="answer length limit")
    batch_size: int = Field(4, gt=0, description="prompts generated together (left-padded)")
    temperature: float = Field(0.0, ge=0, description="0 = greedy (default, reproducible)")
    max_thinking_tokens: int | None = Field(
        None, gt=0, description="reasoning models: tokens the reasoning may use before </think> is written for it; "
        "the answer then gets max_new_tokens (None: reasoning and answer share max_new_tokens)")


class RobustnessConfig(Section):
    enabled: bool = Field(True, description="score generation tasks again on inputs with typos")
    typo_rate: float = Field(0.08, gt=0, lt=1, description="share of letters perturbed")
    seed: int = Field(0, description="seed of the perturbations (the same for every model)")


class EfficiencyConfig(Section):
    enabled: bool = Field(True, description="measure latency and memory on the same prompts for every model")
    prompts: int = Field(4, ge=1, description="prompts timed (one at a time, after one warm-up)")
    max_new_tokens: int = Field(32, gt=0, description="tokens generated per timed prompt")


class ForgettingConfig(Section):
    baseline: str | None = Field(None, description="model name the others are compared with (default: the first)")
    threshold: float = Field(0.03, ge=0, description="flag a relative drop larger than this (0.03 = 3%)")


class Stage(Section):
    model: str = Field(description="model name (from models) after this stage")
    task: str = Field(description="task name (from tasks) this stage learnt")


class ContinualEvalConfig(Section):
    sequences: dict[str, list[Stage]] = Field(
        default_factory=dict, description="name -> stages in training order (task A's model, then B's...): "
        "every task's score after every stage, average forgetting, backward/forward transfer, a heat-map")
    base: str | None = Field(None, description="model before any stage (forward transfer compares with it)")
    metric: str | None = Field(None, description="score of the matrix (default: each task's primary metric)")


class HarnessConfig(Section):
    tasks: list[str] = Field(default_factory=list, description="lm-evaluation-harness task names (mmlu, cmmlu...)")
    include_path: str | None = Field(None, description="folder of local task YAMLs (data you have locally)")
    limit: int | None = Field(None, ge=1, description="examples per task (None = all)")
    num_fewshot: int | None = Field(None, ge=0, description="few-shot examples (None = the task's default)")


class EvalConfig(Section):
    models: list[ModelEntry] = Field(description="models evaluated on the same data")
    tasks: list[TaskConfig] = Field(default_factory=list, description="evaluation tasks")
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    robustness: RobustnessConfig = Field(default_factory=RobustnessConfig)
    efficiency: EfficiencyConfig = Field(default_factory=EfficiencyConfig)
    forgetting: ForgettingConfig = Field(default_factory=ForgettingConfig)
    harness: HarnessConfig = Field(default_factory=HarnessConfig)
    continual: ContinualEvalConfig = Field(default_factory=ContinualEvalConfig)
    scorecard: dict[str, float] = Field(
        default_factory=lambda: {"quality": 0.5, "robustness": 0.2, "efficiency": 0.1, "retention": 0.2},
        description="dimension -> weight (quality, robustness, efficiency, retention), normalised")
    output_dir: str = Field("eval", description="where predictions, report.md/json and charts go")

    @model_validator(mode="after")
    def _check(self) -> "EvalConfig":
        names = [m.name for m in self.models]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"models: give at least one, with distinct names (got {names})")
        tasks = [t.name for t in self.tasks]
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks: names must be distinct (got {tasks})")
        if self.forgetting.baseline and self.forgetting.baseline not in names:
            raise ValueError(f"forgetting.baseline {self.forgetting.baseline!r} is not a model name ({names})")
        unknown = set(self.scorecard) - {"quality", "robustness", "efficiency", "retention"}
        if unknown or not self.scorecard or any(w < 0 for w in self.scorecard.values()):
            raise ValueError(f"scorecard: weights >= 0 for quality, robustness, efficiency, retention; "
                             f"unknown: {sorted(unknown)}")
        for seq, stages in self.continual.sequences.items():
            for i, stage in enumerate(stages):
                if stage.model not in names:
                    raise ValueError(f"continual.sequences.{seq}[{i}].model: {stage.model!r} is not a model name "
                                     f"({names})")
                if stage.task not in tasks:
                    raise ValueError(f"continual.sequences.{seq}[{i}].task: {stage.task!r} is not a task name "
                                     f"({tasks})")
            if len(stages) < 2:
                raise ValueError(f"continual.sequences.{seq}: give at least two stages (task A, then task B)")
        if self.continual.base and self.continual.base not in names:
            raise ValueError(f"continual.base: {self.continual.base!r} is not a model name ({names})")
        if not self.tasks and not self.harness.tasks:
            raise ValueError("tasks: give at least one task (or harness.tasks)")
        return self

    def resolve_paths(self, base: Path) -> None:
        """Data, models and the harness folder relative to the YAML; output_dir always relative to it."""
        for task in self.tasks:
            task.data = beside(task.data, base)
        for model in self.models:
            model.path = beside(model.path, base)
        if self.harness.include_path:
            self.harness.include_path = beside(self.harness.include_path, base)
        if not Path(self.output_dir).is_absolute():
            self.output_dir = str(base / self.output_dir)


def load(path: str | Path, overrides: list[str] | None = None) -> EvalConfig:
    return config.load(path, overrides, EvalConfig)
