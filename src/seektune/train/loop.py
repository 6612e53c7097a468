"""The one training loop, on accelerate. Methods differ in how the model is prepared (seektune.models.methods),
objectives in the loss (seektune.train.objectives); the loop has no branch on either.

Reading order: set up (run directory, threads, seed, model, data) -> optimizer and schedule -> resume -> steps.
Each optimizer step takes `accumulation x processes` micro-batches from a step plan that is a pure function of
the seed and the step, so a checkpoint needs only the step number to know where the data is. Gradients are
normalised by the units (supervised tokens for CE) of the whole step, all micro-batches on all processes, so a
long answer weighs the same whether it landed in a big or a small micro-batch. Checkpoints are taken only on
step boundaries, where the accumulation buffer is empty.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tqdm.auto import tqdm
from transformers import get_scheduler

from seektune import allocator
from seektune.artifacts import RunDir, write_artifact
from seektune.atomic import staging_dir, write_json
from seektune.config import Config
from seektune.data.batching import Row
from seektune.data.dataset import build as build_data
from seektune.data.terms import TermMatcher
from seektune.errors import ConfigError, TrainingStopped
from seektune.models import methods
from seektune.models.methods import qat
from seektune.models.layers import (enable_gradient_checkpointing, float32_master, skip_adapter_input_casts,
                                    store_frozen_in, trainable_summary)
from seektune.models.loading import load_model, load_tokenizer, model_config, resolve
from seektune.models.vision import load_images
from seektune.runtime import resolve_precision, restore_rng_state, rng_state, seed_everything, set_threads
from seektune.train import checkpoint, objectives, param_groups, sharding
from seektune.train.compile import compile_layers, should_compile
from seektune.train.continual import Continual
from seektune.train.continual.replay import row_losses
from seektune.train.hooks import HookList
from seektune.train.step_plan import make_plan
from seektune.train.stop_request import StopRequest
from seektune.train.tracking import MetricsLog, flat_config, plot_loss, prepare_trackers

log = logging.getLogger("seektune.train")


@dataclass
class LoopState:
    step: int = 0
    best_eval: float | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    domains: dict | None = None  # domain re-weighting state (weights and reference losses)
    replay: dict | None = None   # prioritised replay: the replayed samples' last losses


def _begin(run: RunDir, cfg: Config, resume: bool, accelerator: Accelerator) -> Path | None:
    """The checkpoint to resume from, or None for a fresh start. `--resume` with nothing to resume yet (killed
    before the first checkpoint, or never started) starts from the beginning, so a scheduler can requeue a job
    with one fixed command line."""
    latest = None
    if resume:
        run.check_same_config(cfg)
        latest = checkpoint.latest(run.checkpoints, warn=accelerator.is_main_process)
        if latest is None and accelerator.is_main_process:
            print(f"nothing to resume in {run.path} yet (no complete checkpoint): starting from the beginning",
                  flush=True)
    accelerator.wait_for_everyone()  # every process has looked before the main one replaces anything
    if latest is None and accelerator.is_main_process:
        run.start_fresh(cfg, replace=cfg.output.overwrite or resume)
    accelerator.wait_for_everyone()
    return latest


def _to(batch: dict, device) -> dict:
    """Tensors to the device; anything else (GRPO's examples) as it is."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _evaluate(objective, rows: list[Row], cfg: Config, accelerator: Accelerator, pad_id: int) -> float:
    collate = accelerator.unwrap_model(objective).collate
    objective.eval()
    mine = rows[accelerator.process_index::accelerator.num_processes]
    size = cfg.train.micro_batch_size
    # every process runs the same number of forward passes (a sharded model gathers weights in each); one
    # with fewer rows repeats a batch and does not count it
    passes = math.ceil(math.ceil(len(rows) / accelerator.num_processes) / size)
    totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
    with torch.no_grad():
        for i in range(0, passes * size, size):
            chunk = mine[i:i + size]
            batch = collate(chunk or rows[:size], pad_id, cfg.data.packing)
            loss_sum, n = objective(**_to(batch, accelerator.device))
            if chunk:
                totals += torch.stack([loss_sum.double(), n.double()])
    totals = accelerator.reduce(totals, "sum")
    objective.train()
    return (totals[0] / totals[1].clamp(min=1)).item()


def _save_checkpoint(accelerator, root: Path, step: int, objective, optimizer, scheduler, state: LoopState,
                     cfg: Config, hook_state: dict):
    model = objective.model
    tmp = checkpoint.tmp_dir(root, step)
    if accelerator.is_main_process:
        staging_dir(checkpoint.step_dir(root, step))  # `tmp`, created empty
    accelerator.wait_for_everyone()
    in_engine = sharding.save_engine_state(cfg, accelerator, tmp, model, optimizer)  # sharded: its own format
    checkpoint.write_process_state(tmp, accelerator.process_index, rng_state())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        checkpoint.write_main_state(tmp, model, optimizer, scheduler, asdict(state), hook_state, weights=not in_engine,
                                    own=objective.own_parameters())
        checkpoint.finalise(root, step, cfg.train.keep_last)
    accelerator.wait_for_everyone()


def _save_final(accelerator, objective, tokenizer, run: RunDir, cfg: Config, spec: methods.MethodSpec,
                head: str, base_source: str, processor=None) -> Path:
    """The artifact in final/: the method's save, the objective's own weights beside it (CLIP's alignment)."""
    model = objective.model
    state = sharding.full_state_dict(cfg, accelerator, model, whole_model=spec.artifact == "full-model")
    if accelerator.is_main_process:
        inner = accelerator.unwrap_model(model)
        if cfg.method.qat.bits is not None:
            qat.to_float(inner)
        base = resolve(base_source)   # a continual run's adapter names the merged start model as its base

        def write(tmp: Path) -> None:
            with sharding.whole_state_dict(inner, state):
                spec.save_trained(inner, cfg.method, tmp, base)
            objective.save_beside(tmp)

        info = spec.info(cfg.method, base)
        if cfg.method.qat.bits is not None:
            info["qat"] = qat.record(cfg.method.qat)
        if cfg.objective.name != "causal_lm":
            info["objective"] = cfg.objective.name
        if head != "causal_lm":
            info["head"] = head
        write_artifact(run.final, write, tokenizer, info, processor=processor)
    accelerator.wait_for_everyone()
    return run.final


def train(cfg: Config, resume: bool = False) -> Path:
    """Run (or resume) one training run; return its run directory."""
    spec = methods.get(cfg.method.name)
    run = RunDir(cfg.run_dir)
    precision = resolve_precision(cfg.train.precision)
    trackers = prepare_trackers(cfg.train.report_to, run.tracking)
    # Accelerator state is process-wide; clear it so a second run in one process (tests, notebooks) may choose
    # another precision. The distributed process group (PartialState) is kept. accelerate has no public call.
    AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available(),
                              log_with=trackers or None, project_dir=str(run.tracking) if trackers else None)
    sharding.check_launch(cfg, accelerator)
    threads = set_threads(cfg.train.num_threads, accelerator.num_processes)
    is_main = accelerator.is_main_process
    resume_from = _begin(run, cfg, resume, accelerator)
    seed_everything(cfg.train.seed)
    continual = Continual(cfg, run, accelerator)

    tokenizer = load_tokenizer(cfg.model)
    images = load_images(resolve(cfg.model.name_or_path), model_config(cfg.model), tokenizer)  # None: text model
    if images is None and cfg.objective.name in objectives.NEEDS_IMAGES:
        raise ConfigError(f"objective.name: {cfg.objective.name} trains the vision side of a vision-language model; "
                          f"{cfg.model.name_or_path} is a text model (build one with `seektune vision assemble`)")
    terms = TermMatcher.from_file(cfg.train.term_file) if cfg.train.term_file else None
    data = build_data(cfg.data, tokenizer, cfg.train.seed, terms, cfg.train.term_weight,
                      kind=objectives.DATA[cfg.objective.name], group_size=cfg.objective.group_size, images=images)
    if data.report.train_images and (cfg.objective.name not in objectives.TAKES_IMAGES or cfg.continual.previous):
        raise ConfigError(f"objective.name: {cfg.objective.name} with continual.previous={cfg.continual.previous} "
                          "does not take images yet; image data trains with causal_lm, clip or caption in a run "
                          "of its own")
    pad_id = tokenizer.pad_token_id
    plan, reweighter = make_plan(cfg, data, accelerator.num_processes)
    replay = continual.plan(data.train, tokenizer, accelerator.num_processes)
    plan = replay or plan
    total_steps = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * plan.steps_per_epoch))

    head = objectives.HEAD.get(cfg.objective.name, "causal_lm")
    model_cfg = continual.model_config()
    base = load_model(model_cfg, quantization=spec.quantization(cfg.method) if spec.quantization else None,
                      head=head, pad_token_id=pad_id)
    continual.before_method(base, tokenizer, pad_id)
    base = qat.prepare_qat(base, cfg.method.qat)
    model = methods.prepare(base, cfg.method, total_steps, tokenizer_path=resolve(model_cfg.name_or_path))
    float32_master(model)
    frozen_bf16 = methods.frozen_in_bf16(cfg.method, cfg.train.frozen_dtype, precision,
                                         cfg.train.sharding == "fsdp2")
    if frozen_bf16:
        store_frozen_in(model, torch.bfloat16)
    skip_adapter_input_casts(model)
    if cfg.train.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    hooks = HookList(([spec.hooks(model, cfg.method)] if spec.hooks else []) + continual.after_method(model))
    objective = objectives.build(model, cfg, tokenizer)
    objective.images = images
    own = list(objective.own_parameters().values())   # CLIP's projections: outside the model, trained with it
    trainable, total = (n + sum(p.numel() for p in own) for n in trainable_summary(model))
    if trainable == 0:
        raise ConfigError("method: nothing is trainable with these settings")
    compiled, compile_line = should_compile(cfg, accelerator.device, accelerator.num_processes, images is not None,
                                            total, total_steps)
    if compiled:
        compile_layers(model, cfg.train.compile_memory_budget)
    collate, objective_line = objective.collate, objective.describe()
    unit_rate = f"{objective.unit}/s"   # the units the loss is normalised by: tokens, pairs or sampled answers
    objective, optimizer = sharding.prepare(cfg, accelerator, objective, lambda m: torch.optim.AdamW(
        param_groups.build(m, cfg) + param_groups.own(own, cfg), lr=cfg.train.learning_rate,
        betas=(cfg.train.adam_beta1, cfg.train.adam_beta2)))
    scheduler_name = "constant_with_warmup" if cfg.train.lr_scheduler == "constant" else cfg.train.lr_scheduler
    scheduler = get_scheduler(scheduler_name, optimizer, num_warmup_steps=int(cfg.train.warmup_ratio * total_steps),
                              num_training_steps=total_steps)

    state = LoopState()
    if trackers:
        accelerator.init_trackers(cfg.output.name, config=flat_config(cfg.model_dump(mode="json")))
    metrics = MetricsLog(run.metrics, enabled=is_main, log=accelerator.log if trackers else None)
    if resume_from is not None:
        unwrapped = accelerator.unwrap_model(objective)
        inner = unwrapped.model
        in_engine = sharding.load_engine_state(cfg, accelerator, resume_from, inner, optimizer)
        loop_state, rng, hook_state = checkpoint.load(resume_from, inner, optimizer, scheduler,
                                                      accelerator.process_index, weights=not in_engine,
                                                      own=unwrapped.own_parameters())
        hooks.load_state_dict(hook_state)
        state = LoopState(**loop_state)
        if reweighter is not None and state.domains:
            reweighter.load_state_dict(state.domains)
            plan.weights = dict(reweighter.weights)
        if replay is not None and state.replay:
            replay.load_state_dict(state.replay)
        restore_rng_state(rng)
        metrics.truncate_after(state.step)
        if is_main:
            log.info("resumed from %s", resume_from)

    malloc = allocator.active()   # read once from /proc/self/maps, for the summary line and result.json
    if is_main:
        summary = [f"run: {run.path}", f"model: {cfg.model.name_or_path}, method: {cfg.method.name}",
                   f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)",
                   f"precision: {precision if precision != 'no' else 'fp32'}"
                   f"{' (frozen weights stored in bf16)' if frozen_bf16 else ''}, threads: {threads}, "
                   f"allocator: {allocator.describe(malloc)}, compile: {compile_line}, "
                   f"processes: {accelerator.num_processes}, objective: {objective_line}",
                   f"steps: {total_steps} ({plan.steps_per_epoch} per epoch)", *continual.lines,
                   *data.report.lines()]
        if trackers:
            summary.append(f"tracking: {', '.join(trackers)} in {run.tracking}")
        print("\n".join(summary), flush=True)
        write_json(run.data_report, data.report.as_dict())

    bar = tqdm(total=total_steps, initial=state.step, disable=not is_main, desc="train", dynamic_ncols=True)
    started, tokens_done, last_loss = time.perf_counter(), 0, float("nan")
    params = [p for p in objective.parameters() if p.requires_grad]
    objective.train()
    with StopRequest() as stop:
        while state.step < total_steps and not state.stopped_early and not _stop_requested(stop, accelerator):
            if replay is not None and replay.needs_refresh(state.step):
                losses = row_losses(accelerator.unwrap_model(objective).model, replay.replay_rows, pad_id,
                                    accelerator.device, accelerator.process_index, accelerator.num_processes)
                replay.set_losses(accelerator.reduce(losses, "sum").tolist())
                state.replay = replay.state_dict()
            mine, step_units = plan.step(state.step, accelerator.process_index)
            step_loss = torch.zeros((), dtype=torch.float64, device=accelerator.device)
            scale = accelerator.num_processes / max(step_units, 1)  # DDP averages over processes; undo, then per unit
            for i, rows in enumerate(mine):
                batch = _to(collate(rows, pad_id, cfg.data.packing), accelerator.device)
                sync = contextlib.nullcontext() if i == len(mine) - 1 else accelerator.no_sync(objective)
                with sync:
                    loss_sum, _ = objective(**batch)
                    loss = loss_sum * scale
                    penalty = hooks.penalty()  # once per step in total, spread over the micro-batches
                    if penalty is not None:
                        loss = loss + penalty / len(mine)
                    accelerator.backward(loss)
                step_loss += loss_sum.detach().double()
            grad_norm = (sharding.clip_grad_norm(cfg, accelerator, params, cfg.train.max_grad_norm)
                         if cfg.train.max_grad_norm else None)
            optimizer.step()
            scheduler.step()
            state.step += 1
            hooks.after_optimizer_step(state.step)  # sees this step's gradients (AdaLoRA's sensitivity)
            optimizer.zero_grad(set_to_none=True)
            tokens_done += step_units
            last_loss = (accelerator.reduce(step_loss, "sum") / max(step_units, 1)).item()
            elapsed = time.perf_counter() - started
            lr = max(scheduler.get_last_lr())
            if state.step % cfg.train.log_every == 0 or state.step == total_steps:
                metrics.write({"step": state.step, "epoch": round(state.step / plan.steps_per_epoch, 3),
                               "loss": last_loss, "lr": lr, "supervised_tokens": step_units,
                               "grad_norm": float(grad_norm) if grad_norm is not None else None,
                               "supervised_tokens_per_s": tokens_done / elapsed, "elapsed_s": elapsed,
                               **({"replayed_rows": replay.last_replayed,
                                   "replayed_samples": replay.last_replayed_samples} if replay is not None else {}),
                               **hooks.metrics(), **accelerator.unwrap_model(objective).pop_metrics()})
            bar.set_postfix({"loss": f"{last_loss:.4f}", "lr": f"{lr:.2e}", unit_rate: f"{tokens_done / elapsed:.3g}"})
            bar.update(1)

            if data.eval and cfg.train.eval_every and state.step % cfg.train.eval_every == 0:
                _record_eval(_evaluate(objective, data.eval, cfg, accelerator, pad_id), state, cfg, metrics, bar,
                             accelerator.unwrap_model(objective).pop_metrics(evaluation=True))
                if reweighter is not None:
                    losses = {d: _evaluate(objective, rows, cfg, accelerator, pad_id)
                              for d, rows in data.eval_domains.items()}
                    plan.weights = reweighter.update(losses)
                    state.domains = reweighter.state_dict()
                    metrics.write({"step": state.step, "domain_eval_loss": losses, "domain_weights": plan.weights})
                    bar.write(f"step {state.step}: domain weights " + ", ".join(
                        f"{d} {w:.3f}" for d, w in sorted(plan.weights.items())))
            if cfg.train.save_every and state.step % cfg.train.save_every == 0 and state.step < total_steps:
                _save_checkpoint(accelerator, run.checkpoints, state.step, accelerator.unwrap_model(objective),
                                 optimizer, scheduler, state, cfg, hooks.state_dict())
    bar.close()
    if state.step < total_steps and not state.stopped_early:   # SIGTERM: checkpoint, then say how to continue
        _save_checkpoint(accelerator, run.checkpoints, state.step, accelerator.unwrap_model(objective),
                         optimizer, scheduler, state, cfg, hooks.state_dict())
        accelerator.end_training()
        raise TrainingStopped(f"training stopped by SIGTERM after step {state.step} of {total_steps}; checkpoint "
                              f"saved in {run.checkpoints}: the same command with --resume continues")

    final_eval = None
    if data.eval:
        final_eval = _evaluate(objective, data.eval, cfg, accelerator, pad_id)
        metrics.write({"step": state.step, "eval_loss": final_eval,
                       **accelerator.unwrap_model(objective).pop_metrics(evaluation=True)})
    final = _save_final(accelerator, accelerator.unwrap_model(objective), tokenizer, run, cfg, spec, head,
                        model_cfg.name_or_path, images.processor if images is not None else None)
    if is_main:
        plot_loss(run.metrics, run.loss_plot)
        write_json(run.result, {"steps": state.step, "final_train_loss": last_loss, "final_eval_loss": final_eval,
                                "stopped_early": state.stopped_early, "trainable_parameters": trainable,
                                "total_parameters": total, "precision": precision,
                                "frozen_weights": "bf16" if frozen_bf16 else "fp32", "allocator": malloc,
                                "compiled_layers": compiled,
                                "final": str(final),
                                **hooks.summary(), **continual.summary()})
        print(f"done: {state.step} steps, train loss {last_loss:.4f}"
              + (f", eval loss {final_eval:.4f}" if final_eval is not None else "")
              + f"\nmodel: {final}\nmetrics: {run.metrics}, plot: {run.loss_plot}", flush=True)
    accelerator.end_training()
    return run.path


def _stop_requested(stop: StopRequest, accelerator) -> bool:
    """Whether any process got SIGTERM: all of them stop after the same step (their collectives must match)."""
    if accelerator.num_processes == 1:
        return stop.requested
    flag = torch.tensor(float(stop.requested), device=accelerator.device)
    return accelerator.reduce(flag, "sum").item() > 0


def _record_eval(eval_loss: float, state: LoopState, cfg: Config, metrics: MetricsLog, bar,
                 extra: dict | None = None) -> None:
    metrics.write({"step": state.step, "eval_loss": eval_loss, **(extra or {})})
    bar.write(f"step {state.step}: eval loss {eval_loss:.4f}")
    if state.best_eval is None or eval_loss < state.best_eval:
        state.best_eval, state.evals_without_improvement = eval_loss, 0
        return
    state.evals_without_improvement += 1
    patience = cfg.train.early_stopping_patience
    if patience and state.evals_without_improvement >= patience:
        state.stopped_early = True
        bar.write(f"early stop: no eval improvement in {patience} evaluations (best {state.best_eval:.4f})")
