"""What the loop asks of a continual run, in the loop's order: which weights to load, the earlier tasks' Fisher
(on the loaded weights, before the method wraps them), which layers to freeze and which penalties to add (after
it), and the step plan with replayed rows."""

from __future__ import annotations

import logging

import torch
from accelerate import Accelerator
from torch import nn

from seektune.artifacts import RunDir
from seektune.config import Config, ModelConfig
from seektune.schema import parse_layers
from seektune.data.batching import Row
from seektune.errors import ConfigError
from seektune.models.layers import decoder_layers
from seektune.models.methods import StepHook
from seektune.train.continual import fisher as fisher_io
from seektune.train.continual.anchors import AnchorPenalty
from seektune.train.continual.previous import (PreviousRun, artifact_weights_model, check_same_base, fisher_meta,
                                               open_previous, start_model)
from seektune.train.continual.replay import ReplayPlan

log = logging.getLogger("seektune.train")


class Continual:
    def __init__(self, cfg: Config, run: RunDir, accelerator: Accelerator):
        self.cfg, self.c, self.run, self.accelerator = cfg, cfg.continual, run, accelerator
        self.previous = [open_previous(p) for p in self.c.previous]
        check_same_base(cfg, self.previous)
        opened = {str(p.run.path): p for p in self.previous}   # replayed runs are usually the previous ones
        self.replayed = [opened.get(p) or open_previous(p, "continual.replay.data") for p in self.c.replay_runs]
        self.fisher: dict[str, torch.Tensor] | None = None
        self.frozen_layers: list[int] = []
        self.lines: list[str] = []

    def model_config(self) -> ModelConfig:
        """model.* with the weights of the last earlier run (merged into <run>/start/ for an adapter)."""
        if not self.previous:
            return self.cfg.model
        if self.accelerator.is_main_process:
            start_model(self.previous[-1], self.run)
        self.accelerator.wait_for_everyone()
        start = start_model(self.previous[-1], self.run)
        self.lines.append(f"continual: task {self.cfg.task}, starting from {self.previous[-1].run.path} ({start})")
        return self.cfg.model.model_copy(update={"name_or_path": start})

    # -- before the method wraps the model ------------------------------------------------------------------
    def before_method(self, base: nn.Module, tokenizer, pad_id: int) -> None:
        """The earlier tasks' (online) Fisher, when EWC or adaptive freezing needs it."""
        if not self.previous or not (self.c.ewc or self.c.freeze_important):
            return
        samples = self.c.ewc.fisher_samples if self.c.ewc else 200
        gamma = self.c.ewc.gamma if self.c.ewc else 1.0
        newest_first = [self._task_fisher(p, base if age == 0 else None, tokenizer, pad_id, samples)
                        for age, p in enumerate(reversed(self.previous))]   # age 0: the weights `base` holds
        self.fisher = fisher_io.accumulate(newest_first, gamma)
        self.lines.append(f"continual: Fisher of {len(self.previous)} earlier task(s) (up to {samples} samples "
                          f"each{', online gamma ' + str(gamma) if len(self.previous) > 1 else ''})")

    def _task_fisher(self, p: PreviousRun, weights: nn.Module | None, tokenizer, pad_id: int,
                     samples: int) -> dict[str, torch.Tensor]:
        path = p.run.path / fisher_io.FILE
        rows = fisher_io.pick(p.rows(tokenizer, self.cfg.train.seed), samples, self.cfg.train.seed)
        meta = fisher_meta(p, len(rows), self.cfg.train.seed)
        if self.accelerator.is_main_process and not fisher_io.matches(path, meta):
            model = weights if weights is not None else artifact_weights_model(p)
            device = next(model.parameters()).device
            model.to(self.accelerator.device)
            log.info("computing the Fisher of %s on %d samples", p.run.path, len(rows))
            fisher_io.save(path, fisher_io.diagonal_fisher(model, rows, pad_id), meta)
            model.to(device)
        self.accelerator.wait_for_everyone()
        loaded = fisher_io.load(path, meta)
        if loaded is None:
            raise ConfigError(f"continual.ewc: could not read {path} after writing it")
        return loaded

    # -- after the method ------------------------------------------------------------------------------------
    def after_method(self, model: nn.Module) -> list[StepHook]:
        """Freeze this task's layers, then anchor what still trains."""
        self._freeze(model)
        hooks: list[StepHook] = []
        if self.c.ewc:
            hooks.append(AnchorPenalty("ewc", model, self.c.ewc.weight, self.fisher))
        if self.c.l2sp:
            hooks.append(AnchorPenalty("l2sp", model, self.c.l2sp.weight, None))
        return hooks

    def _freeze(self, model: nn.Module) -> None:
        spec = self.c.freeze_schedule.get(self.cfg.task, "")
        layers = decoder_layers(model) if (spec.strip() or self.c.freeze_important) else None
        frozen = set(parse_layers(spec)) if spec.strip() else set()
        if layers is not None and frozen and max(frozen) >= len(layers):
            raise ConfigError(f"continual.freeze_schedule.{self.cfg.task}: layer {max(frozen)} does not exist (the "
                              f"model has {len(layers)}: 0-{len(layers) - 1})")
        if self.c.freeze_important and self.fisher is not None:
            importance = fisher_io.layer_importance(self.fisher, len(layers))
            k = round(self.c.freeze_important * len(layers))
            frozen |= set(sorted(range(len(layers)), key=lambda i: -importance[i])[:k])
        for i in sorted(frozen):
            layers[i].requires_grad_(False)
        self.frozen_layers = sorted(frozen)
        if frozen:
            self.lines.append(f"continual: layers frozen for task {self.cfg.task}: {self.frozen_layers}")

    # -- data ------------------------------------------------------------------------------------------------
    def plan(self, rows: list[Row], tokenizer, processes: int) -> ReplayPlan | None:
        r = self.c.replay
        if r is None:
            return None
        replay_rows = [row for p in self.replayed for row in p.rows(tokenizer, self.cfg.train.seed)]
        t = self.cfg.train
        self.lines.append(f"continual: replaying {len(replay_rows)} samples of "
                          f"{', '.join(str(p.run.path) for p in self.replayed)} at ratio {r.ratio}"
                          + (f", prioritised (alpha {r.alpha}, refreshed every {r.refresh_every} steps)"
                             if r.prioritized else ""))
        return ReplayPlan(rows, replay_rows, r.ratio, t.micro_batch_size, t.gradient_accumulation_steps, processes,
                          t.seed, r.prioritized, r.alpha, r.refresh_every,
                          pack_to=self.cfg.data.max_length if self.cfg.data.packing else None)

    def summary(self) -> dict:
        return {"continual_task": self.cfg.task, "frozen_layers": self.frozen_layers,
                "previous": [str(p.run.path) for p in self.previous]} if self.c.active else {}
