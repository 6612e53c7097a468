"""GRPO (DeepSeekMath / R1): for each prompt, sample a group of answers from the current policy, score them with
reward functions, and push up the answers that beat their group's mean.

  advantage_i = (r_i - mean(r_group)) / (std(r_group) + 1e-4)
  loss_i = mean over answer tokens t of  -min(rho_t A_i, clip(rho_t, 1-eps, 1+eps) A_i) + beta KL_t
  KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1          (the k3 estimator; ref: the adapter switched off)

One optimisation pass per sample (TRL's default num_iterations=1), so the old policy is the current one
detached and rho = 1 with the policy gradient's derivative. One unit is one sampled answer; the loop normalises
by answers as it does by tokens for CE. Sampling draws from torch's global generator, which checkpoints save and
resume restores, so a resumed run samples the same answers.
"""

from __future__ import annotations

import torch
from torch import nn

from seektune.data.prompts import PromptRow, collate_prompts
from seektune.data.reasoning import parse_generated, prompt_opens_reasoning
from seektune.data.render import IGNORE, end_of_turn_ids
from seektune.objective_config import ObjectiveConfig
from seektune.train.objectives.base import Objective
from seektune.train.objectives.causal_lm import supports_selective_head
from seektune.train.objectives.preference import token_logps
from seektune.train.rewards import RewardSet, Sampled


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Rewards normalised within each prompt's group (consecutive `group_size` entries)."""
    grouped = rewards.view(-1, group_size)
    return ((grouped - grouped.mean(dim=1, keepdim=True)) / (grouped.std(dim=1, keepdim=True) + 1e-4)).view(-1)


def grpo_token_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                    ref_logps: torch.Tensor | None, beta: float, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss per token, KL per token) for tokens whose answer has advantage `advantages` (one per token)."""
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon)
    loss = -torch.min(ratio * advantages, clipped * advantages)
    kl = torch.zeros_like(loss)
    if ref_logps is not None:
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1
        loss = loss + beta * kl
    return loss, kl


class GRPOObjective(Objective):
    name = "grpo"
    unit = "answers"

    def __init__(self, model: nn.Module, cfg: ObjectiveConfig, tokenizer, rewards: RewardSet):
        super().__init__(model)
        self.cfg, self.tokenizer, self.rewards = cfg, tokenizer, rewards
        self.stops = end_of_turn_ids(tokenizer)
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.selective_head = supports_selective_head(model)
        self._sums = {True: {}, False: {}}

    def describe(self) -> str:
        return (f"grpo (group {self.cfg.group_size}, rewards {', '.join(self.cfg.rewards)}, beta {self.cfg.beta}, "
                f"clip {self.cfg.epsilon}, {self.cfg.max_new_tokens} new tokens at temperature {self.cfg.temperature})")

    def collate(self, rows: list[PromptRow], pad_id: int, packed: bool) -> dict:
        return collate_prompts(rows, pad_id)

    @torch.no_grad()
    def _sample(self, prompts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()   # no dropout while sampling; the policy's forward below trains as usual
        try:
            out = self.model.generate(input_ids=prompts, attention_mask=mask, do_sample=True,
                                      temperature=self.cfg.temperature, top_p=self.cfg.top_p, top_k=0,
                                      max_new_tokens=self.cfg.max_new_tokens, eos_token_id=self.stops,
                                      pad_token_id=self.pad)
        finally:
            self.model.train(was_training)
        return out[:, prompts.shape[1]:]

    def _score(self, completions: torch.Tensor, keep: torch.Tensor, finished: torch.Tensor, prompts: torch.Tensor,
               examples: list) -> tuple[torch.Tensor, dict[str, float]]:
        group = self.cfg.group_size
        opened = [prompt_opens_reasoning(self.tokenizer, p) for p in prompts[::group].tolist()]  # once per prompt
        sampled = []
        for i, row in enumerate(completions.tolist()):
            text = self.tokenizer.decode([t for t, k in zip(row, keep[i].tolist()) if k and t not in self.stops],
                                         skip_special_tokens=True)
            reasoning, answer, closed = parse_generated(text, opened[i // group])
            sampled.append(Sampled(answer, reasoning, closed, bool(finished[i]), examples[i // group]))
        return self.rewards(sampled)

    def forward(self, input_ids, attention_mask, examples):
        group = self.cfg.group_size
        prompts = input_ids.repeat_interleave(group, dim=0)
        prompt_mask = attention_mask.repeat_interleave(group, dim=0)
        completions = self._sample(prompts, prompt_mask)
        is_stop = torch.isin(completions, torch.tensor(self.stops, device=completions.device))
        # keep every token up to and including the first stop token
        keep = (torch.cumsum(is_stop.long(), dim=1) - is_stop.long()) == 0
        finished = is_stop.any(dim=1)
        rewards, per_function = self._score(completions, keep, finished, prompts, examples)
        advantages = group_advantages(rewards, group).to(completions.device)

        ids = torch.cat([prompts, completions], dim=1)
        mask = torch.cat([prompt_mask, keep.long()], dim=1)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)   # what generate used for left-padded prompts
        targets = torch.full_like(ids, IGNORE)
        width = prompts.shape[1]
        targets[:, width - 1:-1] = torch.where(keep, completions, torch.full_like(completions, IGNORE))
        supervised = targets != IGNORE
        logps = token_logps(self.model, ids, targets, mask, positions, self.selective_head)
        ref = None
        if self.cfg.beta > 0:
            with torch.no_grad(), self.model.disable_adapter():
                ref = token_logps(self.model, ids, targets, mask, positions, self.selective_head)
        rows = supervised.nonzero()[:, 0]
        token_loss, kl = grpo_token_loss(logps, logps.detach(), advantages[rows].float(), ref, self.cfg.beta,
                                         self.cfg.epsilon)
        lengths = supervised.sum(dim=1)
        per_answer = torch.zeros(len(ids), dtype=token_loss.dtype, device=ids.device).index_add(0, rows, token_loss)
        loss = (per_answer / lengths.clamp(min=1)).sum()
        kl_mean = (torch.zeros(len(ids), dtype=kl.dtype, device=ids.device).index_add(0, rows, kl.detach())
                   / lengths.clamp(min=1)).mean()
        self._record(rewards, group, per_function, kl_mean.item(), lengths.float().mean().item(),
                     finished.float().mean().item())
        return loss, torch.tensor(len(ids), device=ids.device)

    def _record(self, rewards: torch.Tensor, group: int, per_function: dict, kl: float, length: float,
                finished: float) -> None:
        sums = self._sums[self.training]
        figures = {"reward": rewards.mean().item(), "reward_std": rewards.view(-1, group).std(dim=1).mean().item(),
                   "kl": kl, "completion_length": length, "finished": finished,
                   **{f"reward_{name}": value for name, value in per_function.items()}}
        for key, value in figures.items():
            sums[key] = sums.get(key, 0.0) + value
        sums["_batches"] = sums.get("_batches", 0) + 1

    def pop_metrics(self, evaluation: bool = False) -> dict:
        """Mean reward (total and per function), within-group reward std, KL to the reference, answer length
        and share of answers that ended at the end-of-turn token, over the batches since the last call."""
        sums = self._sums[not evaluation]
        batches = sums.pop("_batches", 0)
        out = {("eval_" if evaluation else "") + k: v / batches for k, v in sums.items()} if batches else {}
        sums.clear()
        return out
