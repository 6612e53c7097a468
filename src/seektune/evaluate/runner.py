"""Evaluate several models on the same tasks, writing every result as it is produced (resumable).

Order: for each model (loaded once): each task's examples in batches, clean then perturbed inputs;
perplexity and retrieval tasks (one measurement each); the efficiency measurement. Results go to the store first;
aggregation reads the store. Examples with images go to a vision-language model with their pixels, as in training.
"""

from __future__ import annotations

import gc
import hashlib
import json
import resource
from pathlib import Path

import torch
from tqdm.auto import tqdm

from seektune.artifacts import open_artifact
from seektune.atomic import sha256
from seektune.evaluate.batch_generation import timed_generation
from seektune.models.generation import generate_answers
from seektune.evaluate.eval_config import MEASURED, EvalConfig, ModelEntry, TaskConfig
from seektune.data.examples import Example, load_examples, load_records
from seektune.evaluate.perplexity import perplexity
from seektune.evaluate.perturb import add_typos
from seektune.evaluate.retrieval import check_examples, retrieval
from seektune.evaluate.scoring import score_example
from seektune.evaluate.store import ResultStore
from seektune.errors import DataError
from seektune.runtime import set_threads
from seektune.models.memory import weight_bytes


def fingerprint(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def weights_stamp(path: str) -> list:
    """Name, size and modification time of the files that make the model at `path` (a run's final/, a model or
    adapter directory, a GGUF file): a model retrained, re-quantized or re-exported at the same path is
    evaluated again instead of reusing its predecessor's answers. Packaged names and hub ids: []."""
    target = Path(path)
    if (target / "final").is_dir():
        target = target / "final"
    if target.is_file():
        return [[target.name, target.stat().st_size, target.stat().st_mtime_ns]]
    if not target.is_dir():
        return []
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(target.iterdir()) if f.is_file()]


def perturbed(example: Example, rate: float, seed: int) -> list[dict]:
    messages = [dict(m) for m in example.messages]
    messages[-1]["content"] = add_typos(messages[-1]["content"], rate, seed * 1_000_003 + example.index)
    return messages


class Runner:
    def __init__(self, cfg: EvalConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.store = ResultStore(self.out)
        self.examples: dict[str, list[Example]] = {}
        for task in cfg.tasks:
            if not Path(task.data).is_file():
                raise DataError(f"task {task.name}: data file not found: {task.data}")
            if task.type != "perplexity":
                self.examples[task.name] = load_examples(task.data, task.system_prompt, task.limit)
            if task.type == "retrieval":
                check_examples(task.name, self.examples[task.name])
        self.data_hash = {t.name: sha256(t.data) for t in cfg.tasks}

    def task_fp(self, model: ModelEntry, task: TaskConfig) -> str:
        return fingerprint(model.path, weights_stamp(model.path), self.data_hash[task.name], task.model_dump(),
                           self.cfg.generation.model_dump(), self.cfg.robustness.model_dump())

    def variants(self, task: TaskConfig) -> list[str]:
        return ["clean", "typo"] if self.cfg.robustness.enabled and task.type not in MEASURED else ["clean"]

    def pending(self, model: ModelEntry) -> bool:
        for task in self.cfg.tasks:
            fp = self.task_fp(model, task)
            if task.type in MEASURED:
                if self.store.measurement(model.name, f"{task.type}:{task.name}", fp) is None:
                    return True
                continue
            for variant in self.variants(task):
                if any(self.store.prediction(model.name, task.name, variant, e.index, fp) is None
                       for e in self.examples[task.name]):
                    return True
        if self.cfg.harness.tasks and self.store.measurement(model.name, "harness", self.harness_fp(model)) is None:
            return True
        return self.cfg.efficiency.enabled and self.store.measurement(
            model.name, "efficiency", self.efficiency_fp(model)) is None

    def harness_fp(self, model: ModelEntry) -> str:
        return fingerprint(model.path, weights_stamp(model.path), self.cfg.harness.model_dump())

    def _harness(self, entry: ModelEntry, model, tokenizer) -> None:
        from seektune.evaluate.harness import run_harness

        fp = self.harness_fp(entry)
        if self.store.measurement(entry.name, "harness", fp) is None:
            h = self.cfg.harness
            scores = run_harness(model, tokenizer, h.tasks, h.include_path, h.limit, h.num_fewshot,
                                 self.cfg.generation.batch_size)
            self.store.add_measurement({"model": entry.name, "kind": "harness", "fp": fp, "scores": scores})

    def efficiency_fp(self, model: ModelEntry) -> str:
        return fingerprint(model.path, weights_stamp(model.path), self.cfg.efficiency.model_dump(),
                           torch.cuda.is_available())

    def run(self) -> None:
        set_threads()
        for model_entry in self.cfg.models:
            if not self.pending(model_entry):
                print(f"{model_entry.name}: all results already in {self.out} (resumed)", flush=True)
                continue
            artifact = open_artifact(model_entry.path)
            model, tokenizer = artifact.load()
            images = self._images(model_entry, artifact)
            for task in self.cfg.tasks:
                if task.type == "perplexity":
                    self._perplexity(model_entry, task, model, tokenizer)
                elif task.type == "retrieval":
                    self._retrieval(model_entry, task, model, tokenizer, images, artifact.path)
                else:
                    for variant in self.variants(task):
                        self._generate(model_entry, task, variant, model, tokenizer, images)
            if self.cfg.efficiency.enabled:
                self._efficiency(model_entry, model, tokenizer, images)
            if self.cfg.harness.tasks:
                self._harness(model_entry, model, tokenizer)
            del model
            gc.collect()

    def _images(self, entry: ModelEntry, artifact):
        """The model's processor when any task has images (refused for a text model, naming the task)."""
        with_images = [t.name for t in self.cfg.tasks if any(e.images for e in self.examples.get(t.name, []))]
        if not with_images:
            return None
        images = artifact.load_images()
        if images is None:
            raise DataError(f"task {with_images[0]} has images, but model {entry.name} ({entry.path}) reads text "
                            "only; evaluate a vision-language model on it")
        return images

    def _generate(self, entry: ModelEntry, task: TaskConfig, variant: str, model, tokenizer, images) -> None:
        fp = self.task_fp(entry, task)
        todo = [e for e in self.examples[task.name]
                if self.store.prediction(entry.name, task.name, variant, e.index, fp) is None]
        if not todo:
            return
        rob, gen = self.cfg.robustness, self.cfg.generation
        bar = tqdm(total=len(todo), desc=f"{entry.name} {task.name} {variant}", unit=" ex")
        for start in range(0, len(todo), gen.batch_size):
            batch = todo[start:start + gen.batch_size]
            prompts = [e.messages if variant == "clean" else perturbed(e, rob.typo_rate, rob.seed) for e in batch]
            answers = generate_answers(model, tokenizer, prompts, gen.max_new_tokens, gen.temperature,
                                       gen.max_thinking_tokens, images=images,
                                       prompt_images=[e.images for e in batch])
            for example, prompt, answer in zip(batch, prompts, answers):
                row = {"model": entry.name, "task": task.name, "variant": variant, "index": example.index, "fp": fp,
                       "prompt": prompt[-1]["content"], "prediction": answer.answer,
                       "scores": score_example(task, example, answer.answer, answer.reasoning)}
                if example.images:
                    row["images"] = example.images
                if answer.thought:
                    row.update(reasoning=answer.reasoning, reasoning_tokens=answer.reasoning_tokens,
                               think_closed=answer.closed)
                self.store.add_prediction(row)
            bar.update(len(batch))
        bar.close()

    def _perplexity(self, entry: ModelEntry, task: TaskConfig, model, tokenizer) -> None:
        fp = self.task_fp(entry, task)
        if self.store.measurement(entry.name, f"perplexity:{task.name}", fp) is None:
            result = perplexity(model, tokenizer, load_records(task.data, task.limit))
            self.store.add_measurement({"model": entry.name, "kind": f"perplexity:{task.name}", "fp": fp, **result})

    def _retrieval(self, entry: ModelEntry, task: TaskConfig, model, tokenizer, images, model_dir) -> None:
        fp = self.task_fp(entry, task)
        if self.store.measurement(entry.name, f"retrieval:{task.name}", fp) is None:
            result = retrieval(model, tokenizer, images, Path(model_dir) if Path(model_dir).is_dir() else None,
                               self.examples[task.name], task.retrieval_by)
            self.store.add_measurement({"model": entry.name, "kind": f"retrieval:{task.name}", "fp": fp, **result})

    def _efficiency(self, entry: ModelEntry, model, tokenizer, images) -> None:
        fp = self.efficiency_fp(entry)
        if self.store.measurement(entry.name, "efficiency", fp) is not None:
            return
        eff = self.cfg.efficiency
        prompts = [e for examples in self.examples.values() for e in examples][: eff.prompts]
        if not prompts:
            return
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        timed_generation(model, tokenizer, prompts[0].messages, 4, images, prompts[0].images)  # warm-up
        runs = [timed_generation(model, tokenizer, e.messages, eff.max_new_tokens, images, e.images) for e in prompts]
        mean = {k: sum(r[k] for r in runs) / len(runs) for k in ("ttft_ms", "ms_per_token", "tokens_per_s")}
        weights = weight_bytes(model)   # stored bytes, quantized tensors included
        peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        self.store.add_measurement({"model": entry.name, "kind": "efficiency", "fp": fp, **mean,
                                    "weights_mb": weights / 2**20, "peak_memory_mb": peak / 2**20,
                                    "peak_memory_kind": "cuda allocated" if torch.cuda.is_available()
                                    else "process RSS high-water mark", "prompts": len(runs),
                                    "device": str(model.device)})
