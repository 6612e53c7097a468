"""The one training loop, on accelerate. Every method runs through it; methods differ only in model preparation.

Reading order: set up (threads, seed, model, data) -> optimizer and schedule -> resume -> steps. Each optimizer
step takes `accumulation x processes` micro-batches from a per-epoch order that is a pure function of
(seed, epoch), so a checkpoint needs only the step number to know where the data is. Gradients are
normalised by the supervised tokens of the whole step (all micro-batches on all processes), so a long
answer weighs the same whether it landed in a big or a small micro-batch. Checkpoints are taken only on
step boundaries, where the accumulation buffer is empty.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType
from tqdm.auto import tqdm
from transformers import get_scheduler

from seektune import config as config_io
from seektune.config import Config
from seektune.data.batching import Row, collate, epoch_order
from seektune.data.dataset import build as build_data
from seektune.data.pipeline.mix import DomainWeights
from seektune.data.terms import TermMatcher
from seektune.errors import CheckpointError, ConfigError
from seektune.models import methods
from seektune.models.loading import load_model, load_tokenizer, resolve
from seektune.models.peft_methods import quantization_config
from seektune.runtime import resolve_precision, restore_rng_state, rng_state, seed_everything, set_threads
from seektune.train import checkpoint, param_groups
from seektune.train.domain_sampling import DomainStepPlan, initial_weights
from seektune.train.method_hooks import hooks_for
from seektune.train.objective import CausalLMObjective
from seektune.train.tracking import MetricsLog, plot_loss

log = logging.getLogger("seektune.train")


@dataclass
class LoopState:
    step: int = 0
    best_eval: float | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    domains: dict | None = None  # domain re-weighting state (weights and reference losses)


class StepPlan:
    """Which rows each process uses for each optimizer step."""

    def __init__(self, rows: list[Row], micro_batch: int, accumulation: int, processes: int, seed: int):
        self.rows, self.micro_batch, self.seed = rows, micro_batch, seed
        self.per_step = accumulation * processes
        self.processes = processes
        self.micro_batches_per_epoch = math.ceil(len(rows) / micro_batch)
        self.steps_per_epoch = math.ceil(self.micro_batches_per_epoch / self.per_step)
        self._order_epoch, self._order = -1, []

    def _micro_batch(self, epoch: int, index: int) -> list[Row]:
        if epoch != self._order_epoch:
            self._order_epoch, self._order = epoch, epoch_order(len(self.rows), self.seed, epoch)
        index %= self.micro_batches_per_epoch  # the last step of an epoch wraps around to stay full
        picked = self._order[index * self.micro_batch:(index + 1) * self.micro_batch]
        return [self.rows[i] for i in picked]

    def step(self, step: int, rank: int) -> tuple[list[list[Row]], int]:
        """(this process's micro-batches, supervised tokens of the whole step across processes)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        batches = [self._micro_batch(epoch, k * self.per_step + j) for j in range(self.per_step)]
        total = sum(r.supervised for b in batches for r in b)
        return batches[rank::self.processes], total


def _prepare_run_dir(cfg: Config, resume: bool, is_main: bool) -> Path:
    run_dir = cfg.run_dir
    saved = run_dir / "config.yaml"
    if resume:
        if not saved.is_file():
            raise CheckpointError(f"nothing to resume in {run_dir} (no config.yaml); start without --resume")
        old = config_io.load(saved).model_dump(exclude={"output"})
        new = cfg.model_dump(exclude={"output"})
        diff = [f"{s}.{k}" for s in new for k in new[s] if old[s].get(k) != new[s][k]]
        if diff:
            raise CheckpointError(f"--resume needs the run's own config; these keys differ: {', '.join(diff)}")
        return run_dir
    if not is_main:  # the main process checks and creates the directory; others would see it half-made
        return run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        if not cfg.output.overwrite:
            hint = "--resume to continue it" if not (run_dir / "final").exists() else "another output.name"
            raise ConfigError(f"run directory {run_dir} already exists; use {hint}, or output.overwrite=true")
        shutil.rmtree(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    config_io.save(cfg, saved)
    return run_dir


def _evaluate(objective, rows: list[Row], cfg: Config, accelerator: Accelerator, pad_id: int) -> float:
    objective.eval()
    mine = rows[accelerator.process_index::accelerator.num_processes]
    totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    with torch.no_grad():
        for i in range(0, len(mine), cfg.train.micro_batch_size):
            batch = collate(mine[i:i + cfg.train.micro_batch_size], pad_id, cfg.data.packing)
            loss_sum, n = objective(**{k: v.to(accelerator.device) for k, v in batch.items()})
            totals += torch.stack([loss_sum.double(), n.double()])
    totals = accelerator.reduce(totals, "sum")
    objective.train()
    return (totals[0] / totals[1].clamp(min=1)).item()


def _save_checkpoint(accelerator, root: Path, step: int, model, optimizer, scheduler, state: LoopState, cfg: Config,
                     method_state: dict):
    tmp = checkpoint.tmp_dir(root, step)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        accelerator.save_state(str(tmp / "engine"))  # sharded engines keep their own format
    checkpoint.write_process_state(tmp, accelerator.process_index, rng_state())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        checkpoint.write_main_state(tmp, model, optimizer, scheduler, asdict(state), method_state)
        checkpoint.finalise(root, step, cfg.train.keep_last)
    accelerator.wait_for_everyone()


def _save_final(accelerator, model, tokenizer, run_dir: Path, cfg: Config) -> Path:
    final, tmp = run_dir / "final", run_dir / ".final-tmp"
    whole_model = cfg.method.name in ("full", "freeze")
    gathered = whole_model and accelerator.distributed_type != DistributedType.NO
    state = accelerator.get_state_dict(model) if gathered else None  # sharded engines gather the full weights
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        inner = accelerator.unwrap_model(model)
        base = resolve(cfg.model.name_or_path)
        if state is not None:
            inner.save_pretrained(tmp, state_dict=state)
        else:
            methods.save_trained(inner, cfg.method, tmp, base)
        methods.write_method_info(cfg.method, tmp, base)
        tokenizer.save_pretrained(tmp)
        checkpoint.publish(tmp, final)
    accelerator.wait_for_everyone()
    return final


def train(cfg: Config, resume: bool = False) -> Path:
    """Run (or resume) one training run; return its run directory."""
    precision = resolve_precision(cfg.train.precision)
    # Accelerator state is process-wide; clear it so a second run in one process (tests, notebooks) may choose
    # another precision. The distributed process group (PartialState) is kept. accelerate has no public call.
    AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())
    threads = set_threads(cfg.train.num_threads, accelerator.num_processes)
    is_main = accelerator.is_main_process
    run_dir = _prepare_run_dir(cfg, resume, is_main)
    accelerator.wait_for_everyone()
    seed_everything(cfg.train.seed)

    tokenizer = load_tokenizer(cfg.model)
    terms = TermMatcher.from_file(cfg.train.term_file) if cfg.train.term_file else None
    data = build_data(cfg.data, tokenizer, cfg.train.seed, terms, cfg.train.term_weight)
    pad_id = tokenizer.pad_token_id
    plan, reweighter = _step_plan(cfg, data, accelerator.num_processes)
    total_steps = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * plan.steps_per_epoch))

    quantized = quantization_config(cfg.method) if cfg.method.name == "qlora" else None
    model = methods.prepare(load_model(cfg.model, quantization=quantized), cfg.method, total_steps,
                            tokenizer_path=resolve(cfg.model.name_or_path))
    methods.float32_master(model)
    if cfg.train.gradient_checkpointing:
        methods.enable_gradient_checkpointing(model)
    trainable, total = methods.trainable_summary(model)
    if trainable == 0:
        raise ConfigError("method: nothing is trainable with these settings")
    hooks = hooks_for(model, cfg.method)
    optimizer = torch.optim.AdamW(param_groups.build(model, cfg), lr=cfg.train.learning_rate,
                                  betas=(cfg.train.adam_beta1, cfg.train.adam_beta2))
    scheduler_name = "constant_with_warmup" if cfg.train.lr_scheduler == "constant" else cfg.train.lr_scheduler
    scheduler = get_scheduler(scheduler_name, optimizer, num_warmup_steps=int(cfg.train.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    objective = CausalLMObjective(model, label_smoothing=cfg.train.label_smoothing)
    selective_head = objective.selective_head
    objective, optimizer = accelerator.prepare(objective, optimizer)

    state = LoopState()
    ckpt_root = run_dir / "checkpoints"
    metrics = MetricsLog(run_dir / "metrics.jsonl", enabled=is_main)
    if resume:
        latest = checkpoint.latest(ckpt_root)
        if latest is None:
            raise CheckpointError(f"no complete checkpoint in {ckpt_root}; start again without --resume")
        if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            accelerator.load_state(str(latest / "engine"))
        loop_state, rng, method_state = checkpoint.load(latest, accelerator.unwrap_model(objective).model, optimizer,
                                                        scheduler, accelerator.process_index)
        hooks.load_state_dict(method_state)
        state = LoopState(**loop_state)
        if reweighter is not None and state.domains:
            reweighter.load_state_dict(state.domains)
            plan.weights = dict(reweighter.weights)
        restore_rng_state(rng)
        metrics.truncate_after(state.step)
        log.info("resumed from %s", latest)

    if is_main:
        summary = [f"run: {run_dir}", f"model: {cfg.model.name_or_path}, method: {cfg.method.name}",
                   f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)",
                   f"precision: {precision if precision != 'no' else 'fp32'}, threads: {threads}, "
                   f"processes: {accelerator.num_processes}, selective head: {selective_head}",
                   f"steps: {total_steps} ({plan.steps_per_epoch} per epoch)", *data.report.lines()]
        print("\n".join(summary), flush=True)
        (run_dir / "data_report.json").write_text(json.dumps(data.report.as_dict(), indent=1))

    bar = tqdm(total=total_steps, initial=state.step, disable=not is_main, desc="train", dynamic_ncols=True)
    started, tokens_done, last_loss = time.perf_counter(), 0, float("nan")
    params = [p for p in objective.parameters() if p.requires_grad]
    objective.train()
    while state.step < total_steps and not state.stopped_early:
        mine, step_tokens = plan.step(state.step, accelerator.process_index)
        step_loss = torch.zeros((), dtype=torch.float64, device=accelerator.device)
        scale = accelerator.num_processes / max(step_tokens, 1)  # DDP averages over processes; undo, then per token
        for i, rows in enumerate(mine):
            batch = {k: v.to(accelerator.device) for k, v in collate(rows, pad_id, cfg.data.packing).items()}
            sync = contextlib.nullcontext() if i == len(mine) - 1 else accelerator.no_sync(objective)
            with sync:
                loss_sum, _ = objective(**batch)
                loss = loss_sum * scale
                regulariser = hooks.regulariser()  # once per step in total, spread over the micro-batches
                if regulariser is not None:
                    loss = loss + regulariser / len(mine)
                accelerator.backward(loss)
            step_loss += loss_sum.detach().double()
        grad_norm = accelerator.clip_grad_norm_(params, cfg.train.max_grad_norm) if cfg.train.max_grad_norm else None
        optimizer.step()
        scheduler.step()
        state.step += 1
        hooks.after_optimizer_step(state.step)  # sees this step's gradients (AdaLoRA's sensitivity)
        optimizer.zero_grad(set_to_none=True)
        tokens_done += step_tokens
        last_loss = (accelerator.reduce(step_loss, "sum") / max(step_tokens, 1)).item()
        elapsed = time.perf_counter() - started
        lr = max(scheduler.get_last_lr())
        if state.step % cfg.train.log_every == 0 or state.step == total_steps:
            metrics.write({"step": state.step, "epoch": round(state.step / plan.steps_per_epoch, 3),
                           "loss": last_loss, "lr": lr, "supervised_tokens": step_tokens,
                           "grad_norm": float(grad_norm) if grad_norm is not None else None,
                           "supervised_tokens_per_s": tokens_done / elapsed, "elapsed_s": elapsed})
        bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_done / elapsed:.0f}")
        bar.update(1)

        if data.eval and cfg.train.eval_every and state.step % cfg.train.eval_every == 0:
            _record_eval(_evaluate(objective, data.eval, cfg, accelerator, pad_id), state, cfg, metrics, bar)
            if reweighter is not None:
                losses = {d: _evaluate(objective, rows, cfg, accelerator, pad_id)
                          for d, rows in data.eval_domains.items()}
                plan.weights = reweighter.update(losses)
                state.domains = reweighter.state_dict()
                metrics.write({"step": state.step, "domain_eval_loss": losses, "domain_weights": plan.weights})
                bar.write(f"step {state.step}: domain weights " + ", ".join(
                    f"{d} {w:.3f}" for d, w in sorted(plan.weights.items())))
        if cfg.train.save_every and state.step % cfg.train.save_every == 0 and state.step < total_steps:
            _save_checkpoint(accelerator, ckpt_root, state.step, accelerator.unwrap_model(objective).model,
                             optimizer, scheduler, state, cfg, hooks.state_dict())
    bar.close()

    final_eval = None
    if data.eval:
        final_eval = _evaluate(objective, data.eval, cfg, accelerator, pad_id)
        metrics.write({"step": state.step, "eval_loss": final_eval})
    final = _save_final(accelerator, accelerator.unwrap_model(objective).model, tokenizer, run_dir, cfg)
    if is_main:
        plot_loss(run_dir / "metrics.jsonl", run_dir / "loss.png")
        result = {"steps": state.step, "final_train_loss": last_loss, "final_eval_loss": final_eval,
                  "stopped_early": state.stopped_early, "trainable_parameters": trainable,
                  "total_parameters": total, "precision": precision, "final": str(final), **_method_result(hooks)}
        (run_dir / "result.json").write_text(json.dumps(result, indent=1))
        print(f"done: {state.step} steps, train loss {last_loss:.4f}"
              + (f", eval loss {final_eval:.4f}" if final_eval is not None else "")
              + f"\nmodel: {final}\nmetrics: {run_dir / 'metrics.jsonl'}, plot: {run_dir / 'loss.png'}", flush=True)
    accelerator.end_training()
    return run_dir


def _step_plan(cfg: Config, data, processes: int):
    """Uniform epochs over all rows, or per-domain weighted sampling when the train files name domains."""
    args = (cfg.train.micro_batch_size, cfg.train.gradient_accumulation_steps, processes, cfg.train.seed)
    if not data.train_domains:
        return StepPlan(data.train, *args), None
    given = {f.domain: f.weight for f in cfg.data.train if f.weight is not None}
    weights = initial_weights(data.train_domains, given)
    reweighter = DomainWeights(weights, cfg.data.reweight_step_size, cfg.data.reweight_smoothing) \
        if cfg.data.domain_reweighting else None
    return DomainStepPlan(data.train_domains, weights, *args), reweighter


def _method_result(hooks) -> dict:
    summary = hooks.summary()
    return {"adalora_final_ranks": summary} if summary else {}


def _record_eval(eval_loss: float, state: LoopState, cfg: Config, metrics: MetricsLog, bar) -> None:
    metrics.write({"step": state.step, "eval_loss": eval_loss})
    bar.write(f"step {state.step}: eval loss {eval_loss:.4f}")
    if state.best_eval is None or eval_loss < state.best_eval:
        state.best_eval, state.evals_without_improvement = eval_loss, 0
        return
    state.evals_without_improvement += 1
    patience = cfg.train.early_stopping_patience
    if patience and state.evals_without_improvement >= patience:
        state.stopped_early = True
        bar.write(f"early stop: no eval improvement in {patience} evaluations (best {state.best_eval:.4f})")
