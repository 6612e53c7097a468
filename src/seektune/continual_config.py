"""The `continual:` section: a run that learns a new task while keeping what earlier runs learned.

`previous` names the earlier runs in order; training starts from the last one's final model (an adapter is merged
into its base first, and that merged model becomes the base of this run's adapter). The regularisers (EWC,
L2-SP), replay of earlier data and layer freezing are independent and can be combined.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from seektune.schema import LAYER_LIST, Section


class EwcConfig(Section):
    weight: float = Field(1000.0, gt=0, description="lambda of the penalty lambda/2 * sum F * (theta - theta*)^2")
    fisher_samples: int = Field(200, ge=1, description="samples of each earlier task's data the diagonal Fisher is "
                                "estimated on (fewer if the data has fewer); saved as fisher.safetensors in that run")
    gamma: float = Field(1.0, gt=0, le=1, description="online EWC: an earlier task's Fisher is multiplied by gamma "
                         "for every later task (1 = plain accumulation)")


class L2spConfig(Section):
    weight: float = Field(0.01, gt=0, description="alpha of the penalty alpha/2 * ||theta - theta_start||^2")


class ReplayConfig(Section):
    data: list[str] = Field(default_factory=list, description="runs whose training data is replayed (default: "
                            "continual.previous); their config.yaml names the files")
    ratio: float = Field(0.2, gt=0, lt=1, description="share of each step's rows drawn from the replayed data")
    prioritized: bool = Field(False, description="draw replayed samples by rank of their current loss, p_i ~ "
                              "rank_i^-alpha (highest loss first), instead of uniformly")
    alpha: float = Field(0.7, ge=0, description="prioritized: how sharply the draw favours high-loss samples "
                         "(0 = uniform)")
    refresh_every: int = Field(50, ge=1, description="prioritized: recompute every replayed sample's loss every N "
                               "optimizer steps")


class ContinualConfig(Section):
    task: str | None = Field(None, description="this run's task id, as freeze_schedule and the forgetting report "
                             "name it (default: output.name)")
    previous: list[str] = Field(default_factory=list, description="earlier runs, oldest first; training starts from "
                                "the last one's final model and the regularisers keep what they learned")
    ewc: EwcConfig | None = Field(None, description="elastic weight consolidation (diagonal Fisher of the earlier "
                                  "tasks; online across several)")
    l2sp: L2spConfig | None = Field(None, description="L2-SP: pull the trained weights toward where this run started")
    replay: ReplayConfig | None = Field(None, description="mix rows of the earlier tasks' data into every step")
    freeze_schedule: dict[str, str] = Field(
        default_factory=dict, description="task id -> decoder layers kept frozen while that task trains, e.g. "
        "{clinic: '', travel: '0-14'}; the entry for continual.task applies to this run")
    freeze_important: float = Field(
        0.0, ge=0, lt=1, description="adaptive freezing: keep frozen this share of decoder layers, those with the "
        "most Fisher importance for the earlier tasks (needs continual.ewc or a saved fisher.safetensors)")

    @field_validator("freeze_schedule")
    @classmethod
    def _layer_lists(cls, value: dict[str, str]) -> dict[str, str]:
        for task, spec in value.items():
            if str(spec).strip() and not LAYER_LIST.match(str(spec)):
                raise ValueError(f"freeze_schedule.{task}: {spec!r} is not a layer list like '0-11' or '0-3, 8'")
        return {k: str(v) for k, v in value.items()}

    @model_validator(mode="after")
    def _needs_previous(self) -> "ContinualConfig":
        needing = [k for k in ("ewc", "replay") if getattr(self, k) is not None]
        if self.freeze_important:
            needing.append("freeze_important")
        if needing and not self.previous and not (self.replay and self.replay.data):
            raise ValueError(f"continual.{needing[0]} keeps earlier tasks: name them in continual.previous")
        return self

    @property
    def active(self) -> bool:
        return bool(self.previous or self.ewc or self.l2sp or self.replay or self.freeze_schedule
                    or self.freeze_important)

    @property
    def replay_runs(self) -> list[str]:
        return (self.replay.data or self.previous) if self.replay else []
