"""The one typed config tree: model, method, data, train, objective, continual, output.

Defaults live only here. Unknown keys and bad values fail with a message naming the dotted key
and, for typos, the closest valid key. `load()` merges YAML with `dotted.key=value` overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, field_validator, model_validator

from seektune.atomic import write_text
from seektune.continual_config import ContinualConfig
from seektune.method_config import PROMPT_METHODS, MethodConfig
from seektune.objective_config import VISION_ALIGNMENT, ObjectiveConfig
from seektune.schema import Section, apply_overrides, beside, read_yaml, validate
from seektune.schema import describe as describe_schema

S = TypeVar("S", bound=BaseModel)
# methods whose weight change EWC and L2-SP can measure: the weights themselves, or LoRA's B @ A
ANCHORED_METHODS = ("full", "freeze", "lora")
# methods train.sharding=fsdp2 can split: their saved weights come from the model's state dict
FSDP2_METHODS = ("full", "freeze", "lora", "ia3")


class ModelConfig(Section):
    name_or_path: str = Field(
        "smollm2-135m-instruct",
        description="packaged name (see `seektune models`), a local HF directory, or a hub id already in the HF cache",
    )
    revision: str | None = Field(None, description="hub revision (branch, tag or commit) for hub ids")
    trust_remote_code: bool = Field(False, description="run modelling code shipped with the checkpoint (off by default)")
    chat_template: str | None = Field(
        None,
        description="named template (deepseek-v3, deepseek-r1, chatml, llama3, qwen2.5, qwen3) used when the tokenizer has "
        "none, or to replace its own",
    )
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="attention kernel passed to transformers"
    )
    dropout: float | None = Field(
        None, ge=0, lt=1, description="set every dropout probability the model's config exposes "
        "(attention_dropout, hidden_dropout...); None keeps the checkpoint's values"
    )


class DataFile(Section):
    path: str = Field(description="JSON or JSONL file")
    format: Literal["auto", "alpaca", "sharegpt", "openai", "text"] = Field("auto", description="record format")
    domain: str | None = Field(
        None, description="domain name: training rows are sampled per domain by weight; an eval file with the "
        "same domain measures it (needed for data.domain_reweighting)"
    )
    weight: float | None = Field(None, gt=0, description="sampling weight of this domain (default: its share of rows)")


class DataConfig(Section):
    train: list[DataFile] = Field(default_factory=list, description="training files")
    eval: list[DataFile] = Field(default_factory=list, description="evaluation files (eval loss, early stopping)")
    eval_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="fraction of train held out for eval when no eval files are given"
    )
    system_prompt: str | None = Field(None, description="system message added to records that have none")
    max_length: int = Field(512, ge=8, description="maximum tokens per sample (and per packed row)")
    overlength: Literal["truncate", "drop", "error"] = Field(
        "truncate", description="what to do with samples longer than max_length"
    )
    packing: bool = Field(True, description="pack several samples per row (attention does not cross samples)")
    train_on: Literal["all_assistant", "last_assistant"] = Field(
        "all_assistant", description="which assistant turns are supervised"
    )
    reasoning: Literal["train", "mask", "drop"] = Field(
        "train", description="R1-style reasoning in answers: train on it and the answer, keep it as context with "
        "only the answer supervised (mask), or remove it (drop)")
    reasoning_field: str | None = Field(
        None, description="alpaca records: the column holding each answer's reasoning (e.g. reasoning, think)")
    on_error: Literal["raise", "skip"] = Field(
        "raise", description="malformed record: stop with file:line, or skip it and count it"
    )
    domain_reweighting: bool = Field(
        False, description="after each evaluation, shift sampling weight towards domains whose eval loss falls "
        "slowest (exponentiated gradient, DoReMi-style); needs domains on train and eval files"
    )
    reweight_step_size: float = Field(1.0, gt=0, description="domain re-weighting: step size of the update")
    reweight_smoothing: float = Field(0.1, ge=0, le=1, description="domain re-weighting: share of uniform weight "
                                      "mixed in so no domain starves")

    @model_validator(mode="after")
    def _domains_consistent(self) -> "DataConfig":
        named = [f.domain is not None for f in self.train]
        if any(named) and not all(named):
            raise ValueError("data.train: give every file a domain, or none")
        if any(f.weight is not None for f in self.train) and not all(named):
            raise ValueError("data.train: a weight needs a domain on every train file")
        weights = {}
        for f in self.train:
            if f.weight is not None and weights.setdefault(f.domain, f.weight) != f.weight:
                raise ValueError(f"data.train: domain {f.domain!r} has two different weights")
        if self.domain_reweighting:
            missing = sorted({f.domain for f in self.train if f.domain} - {f.domain for f in self.eval})
            if not any(named) or missing:
                raise ValueError("data.domain_reweighting needs a domain on every train file and an eval file per "
                                 f"domain; no eval file for: {missing or 'any domain'}")
        return self

    @field_validator("train", "eval", mode="before")
    @classmethod
    def _paths_to_files(cls, value: Any) -> Any:
        """Accept bare path strings as shorthand for {path: ...}."""
        if isinstance(value, (str, dict)):
            value = [value]
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value


class TrainConfig(Section):
    seed: int = Field(42, description="seeds Python, NumPy, torch and the data order")
    epochs: float = Field(1.0, gt=0, description="passes over the training data (ignored when max_steps > 0)")
    max_steps: int = Field(0, ge=0, description="optimizer steps to run; 0 = derived from epochs")
    micro_batch_size: int = Field(4, gt=0, description="rows per forward pass per process")
    gradient_accumulation_steps: int = Field(1, gt=0, description="micro-batches per optimizer step")
    learning_rate: float = Field(2e-4, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay (not applied to norms/biases)")
    adam_beta1: float = Field(0.9, gt=0, lt=1, description="AdamW beta1")
    adam_beta2: float = Field(0.999, gt=0, lt=1, description="AdamW beta2")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="fraction of steps with linear warmup")
    lr_scheduler: Literal["linear", "cosine", "constant"] = Field("cosine", description="decay after warmup")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping norm; 0 disables clipping")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="autocast dtype; auto = bf16 where the CPU/GPU runs it fast, else fp32"
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory")
    frozen_dtype: Literal["auto", "fp32"] = Field(
        "auto", description="weights that do not train: auto = kept in bf16 under bf16 autocast when the run "
        "saves an adapter (LoRA family, IA3, bottleneck, prompts; not QLoRA, QAT or fsdp2): half their memory "
        "and no cast per step; fp32 = kept in fp32, autocast casts them per step"
    )
    compile: Literal["auto"] | bool = Field(
        "auto", description="torch.compile the decoder layers for training steps (fused elementwise work, less "
        "kept for backward): auto = on a CPU with a C++ compiler, one process, methods full/freeze/lora, "
        "objective causal_lm, for models of 100M+ parameters trained 30+ steps (the first compile takes about "
        "half a minute); true = wherever possible, an error naming what prevents it; false = eager"
    )
    compile_memory_budget: float = Field(
        0.5, gt=0, le=1, description="compiled layers: the share of activation memory kept for backward, between "
        "recomputing everything (0, like gradient checkpointing) and keeping what inductor keeps by default (1); "
        "inductor picks the cheapest ops to recompute"
    )
    chunked_loss: bool = Field(
        True, description="output head + cross-entropy in chunks of answer tokens, gradients computed on the way: "
        "the logits of all answer tokens are never held at once (same loss; otherwise they and their gradients are "
        "the largest single part of a LoRA step's peak)"
    )
    sharding: Literal["none", "fsdp2"] = Field(
        "none", description="fsdp2: torch's fully_shard over the processes of a torchrun / accelerate launch "
        "(weights, gradients and AdamW state split across them; CPU and GPU); none: every process holds the "
        "whole model (DDP), or accelerate's own FSDP/DeepSpeed config on GPUs"
    )
    eval_every: int = Field(0, ge=0, description="evaluate every N optimizer steps (0 = only at the end)")
    early_stopping_patience: int = Field(
        0, ge=0, description="stop after N evaluations without improvement (0 = off)"
    )
    save_every: int = Field(0, ge=0, description="checkpoint every N optimizer steps (0 = only the final model)")
    keep_last: int = Field(2, ge=1, description="complete checkpoints kept on disk")
    log_every: int = Field(1, ge=1, description="write metrics every N optimizer steps")
    num_threads: int = Field(0, ge=0, description="torch CPU threads; 0 = the cores available to this process")
    layer_lr_decay: float = Field(
        1.0, gt=0, le=1, description="layer-wise learning rate: layer i of N learns at lr x decay^(N-1-i); 1 = off"
    )
    embedding_learning_rate: float | None = Field(
        None, gt=0, description="learning rate of the input embeddings (None: lr x decay^N, the lowest layer's)"
    )
    head_learning_rate: float | None = Field(None, gt=0, description="learning rate of the output head (None: lr)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    term_file: str | None = Field(
        None, description="term-weighted loss: a UTF-8 file with one domain term per line (Chinese or English)"
    )
    term_weight: float = Field(1.5, gt=0, description="loss weight of answer tokens that belong to a listed term")
    report_to: list[Literal["tensorboard", "wandb", "mlflow", "trackio"]] = Field(
        default_factory=list, description="experiment trackers (offline/local modes), written under "
        "<run>/tracking/: tensorboard, wandb, mlflow, trackio; [] = metrics.jsonl and loss.png only"
    )


class OutputConfig(Section):
    dir: str = Field("runs", description="parent directory of run directories")
    name: str = Field("run", description="run directory name: <dir>/<name>")
    overwrite: bool = Field(False, description="replace an existing finished run of the same name")


class Config(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    continual: ContinualConfig = Field(default_factory=ContinualConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _check_cross_fields(self) -> "Config":
        if not self.data.train:
            raise ValueError("data.train: at least one training file is required")
        if self.train.early_stopping_patience and not (self.data.eval or self.data.eval_fraction):
            raise ValueError("train.early_stopping_patience needs data.eval files or data.eval_fraction > 0")
        if self.data.domain_reweighting and not self.train.eval_every:
            raise ValueError("data.domain_reweighting updates weights at each evaluation: set train.eval_every")
        objective = self.objective
        if objective.name != "causal_lm" and self.method.name in PROMPT_METHODS:
            raise ValueError(f"objective {objective.name} does not support method {self.method.name} (virtual "
                             "tokens); use lora, an adapter, full or freeze")
        if objective.name == "reward" and self.method.name in ("freeze", "bottleneck"):
            raise ValueError(f"objective reward trains a new score head, which method {self.method.name} would "
                             "leave frozen or unsaved; use lora (peft saves the head beside the adapter), qlora, "
                             "adalora, ia3 or full")
        if objective.uses_reference and self.method.name in ("full", "freeze", "bottleneck"):
            what = f"loss {objective.loss}" if objective.name == "dpo" else "its KL term (beta > 0)"
            raise ValueError(f"objective {objective.name} with {what} compares with a reference model, which a "
                             "peft adapter gives for free (the base with the adapter switched off); with method "
                             f"{self.method.name} use " + ("a reference-free loss (simpo, orpo)" if objective.name
                             == "dpo" else "objective.beta=0") + " or an adapter method (lora, qlora...)")
        self._check_vision_stage()
        self._check_continual()
        self._check_sharding()
        if self.method.name in PROMPT_METHODS and self.data.packing:
            raise ValueError(f"data.packing must be false for method {self.method.name}: the virtual tokens are "
                             "prepended to every row, so samples cannot share one")
        return self

    def _check_vision_stage(self) -> None:
        """clip and caption train the vision side against a frozen language model, which method full with
        method.vision.language_model frozen expresses (set here when the user left it at its default)."""
        vision, name = self.method.vision, self.objective.name
        if name not in VISION_ALIGNMENT:
            if vision.language_model == "frozen" and self.method.name != "full":
                raise ValueError(f"method.vision.language_model: frozen applies to method full; method "
                                 f"{self.method.name} chooses what trains in the language model itself")
            return
        if self.method.name != "full":
            raise ValueError(f"objective {name} trains the vision side whole with the language model frozen: set "
                             f"method.name=full (with {self.method.name} the method would adapt the language model)")
        if "language_model" in vision.model_fields_set and vision.language_model == "train":
            raise ValueError(f"method.vision.language_model: objective {name} keeps the language model frozen; "
                             "drop the setting, or use objective causal_lm to train the language model")
        object.__setattr__(vision, "language_model", "frozen")
        if name == "clip" and vision.projector == "train" and "projector" in vision.model_fields_set:
            raise ValueError("method.vision.projector: objective clip does not use the projector (its own "
                             "projections map the tower into the joint space); train it with objective caption")
        if name == "clip":
            object.__setattr__(vision, "projector", "frozen")
        if name == "caption" and vision.projector == "frozen" and vision.tower == "frozen":
            raise ValueError("objective caption with method.vision.projector and tower both frozen trains nothing; "
                             "set method.vision.projector=train (LLaVA's projector pre-training)")

    def _check_continual(self) -> None:
        c = self.continual
        if not c.active:
            return
        if self.objective.name not in ("causal_lm", "kd"):
            raise ValueError(f"continual: learning a task after earlier ones trains on answers (objective causal_lm "
                             f"or kd), not objective {self.objective.name}")
        if (c.ewc or c.l2sp) and self.method.name not in ANCHORED_METHODS:
            raise ValueError(f"continual.{'ewc' if c.ewc else 'l2sp'} penalises the change of the model's weights, "
                             f"which method {self.method.name} does not expose; use one of "
                             f"{', '.join(ANCHORED_METHODS)}")
        if (c.ewc or c.l2sp) and self.method.name == "lora" and self.method.lora.use_dora:
            raise ValueError("continual.ewc/l2sp measure LoRA's change as B @ A, which DoRA's magnitudes change "
                             "too; set method.lora.use_dora=false")
        if c.replay and any(f.domain for f in self.data.train):
            raise ValueError("continual.replay mixes earlier data into uniform epochs; it does not combine with "
                             "domains on data.train files")

    def _check_sharding(self) -> None:
        if self.train.sharding == "none":
            return
        if self.method.name not in FSDP2_METHODS:
            raise ValueError(f"train.sharding: fsdp2 shards methods {', '.join(FSDP2_METHODS)}; method "
                             f"{self.method.name} keeps parameters fsdp2 cannot split (quantized weights, virtual "
                             "tokens, AdaLoRA's rank schedule); set train.sharding=none")
        if self.objective.name != "causal_lm":
            raise ValueError(f"train.sharding: fsdp2 trains objective causal_lm; objective {self.objective.name} "
                             "runs a second model (reference, teacher) or samples answers; set train.sharding=none")
        if self.continual.active:
            raise ValueError("train.sharding: fsdp2 does not combine with continual: (its penalties and replay "
                             "read whole weights); set train.sharding=none")

    @property
    def task(self) -> str:
        """This run's task id (continual.task, else the run's name)."""
        return self.continual.task or self.output.name

    @property
    def run_dir(self) -> Path:
        return Path(self.output.dir) / self.output.name

    def resolve_paths(self, base: Path) -> None:
        for f in [*self.data.train, *self.data.eval]:
            f.path = beside(f.path, base)
        if self.train.term_file:
            self.train.term_file = beside(self.train.term_file, base)
        c = self.continual
        c.previous = [beside(p, base) for p in c.previous]
        if c.replay:
            c.replay.data = [beside(p, base) for p in c.replay.data]


def load(path: str | Path | None, overrides: list[str] | None = None, schema: type[S] = Config) -> S:
    """The one typed loader (train config, eval config...): read YAML, apply overrides, validate strictly with
    hints from `schema`, and resolve relative paths against the YAML's folder (`schema.resolve_paths`)."""
    tree: dict[str, Any] = read_yaml(path) if path is not None else {}
    cfg = validate(schema, apply_overrides(tree, overrides or []), str(path) if path is not None else "command line")
    if path is not None and hasattr(cfg, "resolve_paths"):
        cfg.resolve_paths(Path(path).resolve().parent)
    return cfg


def save(cfg: Config, path: Path) -> None:
    """Write the resolved config (every default filled in) as YAML, atomically."""
    write_text(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


def describe() -> list[str]:
    """One line per training config key with its default and help, for `seektune train --help`."""
    return describe_schema(Config, leaves=(DataFile,))
