"""`seektune prune`: structured channel pruning (by L1 norm or activation-aware) in rounds with recovery
fine-tuning between them (a smaller dense model), or unstructured magnitude / Wanda sparsity (zeros in dense
matrices).

Recovery is full fine-tuning of the pruned model through the one training loop (`train.loop.train`), on the
run's own data and batch settings, in a scratch directory beside the output that is removed once the output
is published.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from seektune.artifacts import open_artifact, write_artifact
from seektune.compress.calibration import calibration_set
from seektune.compress.options import PruneOptions
from seektune.compress.record import CompressionRecord, weights_bytes
from seektune.compress.source import Source, open_source
from seektune.compress.sparsity import measured_sparsity, prune_magnitude, prune_wanda
from seektune.compress.structured import prune_structured
from seektune.config import Config, DataConfig, DataFile, MethodConfig, ModelConfig, OutputConfig, TrainConfig
from seektune.errors import ConfigError
from seektune.models.layers import trainable_summary

log = logging.getLogger("seektune.compress")
STRUCTURED = ("l1-channels", "activation-channels")   # a smaller dense model
CALIBRATED = ("activation-channels", "wanda")


def recovery_config(source: Source, opts: PruneOptions, model_dir: Path, work: Path, round_: int) -> Config:
    """Full fine-tuning of `model_dir` for `opts.recover_steps` steps with the run's data and batch settings."""
    run = source.run_cfg
    if opts.recover_data:
        data = (run.data if run else DataConfig()).model_copy(
            update={"train": [DataFile(path=opts.recover_data)], "eval": [], "eval_fraction": 0.0,
                    "domain_reweighting": False})
    elif run is not None:
        data = run.data.model_copy(update={"eval": [], "eval_fraction": 0.0, "domain_reweighting": False})
    else:
        raise ConfigError(f"--recover-steps: {source.artifact.path} is not a seektune run, so there is no training "
                          "data to recover on; pass --recover-data data.jsonl")
    train = run.train if run is not None else TrainConfig()
    model = run.model.model_copy(update={"name_or_path": str(model_dir)}) if run is not None else \
        ModelConfig(name_or_path=str(model_dir))
    return Config(
        model=model, method=MethodConfig(name="full"), data=data,
        train=TrainConfig(seed=train.seed + round_, max_steps=opts.recover_steps,
                          micro_batch_size=train.micro_batch_size,
                          gradient_accumulation_steps=train.gradient_accumulation_steps,
                          learning_rate=opts.recover_learning_rate, warmup_ratio=0.1, lr_scheduler="cosine",
                          precision=train.precision, gradient_checkpointing=train.gradient_checkpointing,
                          num_threads=train.num_threads, log_every=max(1, opts.recover_steps // 10)),
        output=OutputConfig(dir=str(work), name=f"recover-{round_}", overwrite=True))


def _structured(source: Source, opts: PruneOptions, work: Path, record: CompressionRecord,
                samples: list[list[int]] | None):
    """Equal rounds: after round i of n, (1 - sparsity * i / n) of the original channels (and KV groups) remain."""
    from seektune.train.loop import train

    model, tokenizer = source.model, source.tokenizer
    config = model.config
    channels, kv_groups = config.intermediate_size, config.num_key_value_heads or config.num_attention_heads
    rounds = []
    for round_ in range(1, opts.steps + 1):
        kept = 1 - opts.sparsity * round_ / opts.steps     # of the original width, after this round
        shape = prune_structured(model, max(1, round(channels * kept)),
                                 max(1, round(kv_groups * kept)) if opts.prune_heads else None, samples)
        entry = {"round": round_, **shape, "parameters": trainable_summary(model)[1]}
        if opts.recover_steps:
            pruned = work / f"pruned-{round_}"
            model.save_pretrained(str(pruned))
            tokenizer.save_pretrained(str(pruned))
            log.info(f"round {round_}/{opts.steps}: {shape}; recovering for {opts.recover_steps} steps")
            recovered = train(recovery_config(source, opts, pruned, work, round_))
            result = recovered / "result.json"
            if result.is_file():
                entry["recovery"] = json.loads(result.read_text())
            model = open_artifact(recovered).load_model()
            model.eval()
        rounds.append(entry)
    record.measured["rounds"] = rounds
    return model


def prune(ref: str, opts: PruneOptions) -> CompressionRecord:
    structured = opts.method in STRUCTURED
    if not structured and (opts.steps > 1 or opts.recover_steps or opts.prune_heads):
        raise ConfigError(f"--steps, --recover-steps and --prune-heads are for {' and '.join(STRUCTURED)}; "
                          f"{opts.method} zeros weights in one pass")
    source = open_source(ref)
    settings = opts.model_dump(exclude={"out", "calibration", "calibration_samples", "calibration_length"})
    calibration = calibration_set(source, opts) if opts.method in CALIBRATED else None
    record = CompressionRecord(opts.method, settings, str(ref), source.base_model, source.bytes_before,
                               calibration=calibration.record if calibration else None,
                               measured={"parameters_before": trainable_summary(source.model)[1]})
    out = Path(opts.out)
    work = out.parent / f".{out.name}.prune-work"
    model = source.model
    if structured:
        model = _structured(source, opts, work, record, calibration.samples if calibration else None)
    elif opts.method == "magnitude":
        prune_magnitude(model, opts.sparsity)
    else:
        prune_wanda(model, opts.sparsity, calibration.samples)
    if not structured:
        record.measured["sparsity"] = round(measured_sparsity(model), 4)
        record.measured["note"] = "zeros inside dense matrices: the same file size and dense-kernel speed"
    record.measured["parameters_after"] = trainable_summary(model)[1]

    def write(tmp: Path) -> None:
        model.to(source.stored_dtype).save_pretrained(str(tmp))
        record.bytes_after = weights_bytes(tmp)
        record.write(tmp)

    write_artifact(out, write, source.tokenizer,
                   {"method": f"prune-{opts.method}", "mergeable": False, "compressed_from": str(ref)})
    shutil.rmtree(work, ignore_errors=True)
    return record
