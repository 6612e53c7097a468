"""`seektune check-template`: the three template mistakes that silently ruin fine-tunes.

1. What is supervised: one rendered training example with the supervised spans marked.
2. Train/inference prefix: for every assistant turn of the first records, the tokens before the answer in
   training must be exactly the prompt the model gets at inference (`add_generation_prompt=True`). This
   catches templates that rewrite history (DeepSeek-R1 drops earlier `<think>` blocks) and `<think>`
   openers placed on the wrong side.
3. Stopping: the tuned model, on real prompts, must end its answers with the end-of-turn token; and the
   saved generation_config must list that token, or other servers will not stop where seektune does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seektune.config import Config
from seektune.data.formats import read_file
from seektune.data.render import IGNORE, Renderer, end_of_turn_ids
from seektune.models.generation import chat_prompt_ids

START, END = "\u27e6", "\u27e7"  # ⟦ supervised ⟧


@dataclass
class TemplateReport:
    example: str = ""
    prefix_checked: int = 0
    prefix_mismatches: list[str] = field(default_factory=list)
    stop_checked: int = 0
    stopped: int = 0
    not_stopped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.prefix_mismatches and self.stopped == self.stop_checked and not self.warnings

    def lines(self, model_ref: str | None) -> list[str]:
        """The report `seektune check-template` prints."""
        out = ["1. a training example (supervised tokens in \u27e6 \u27e7):\n" + self.example + "\n",
               f"2. training prefix == inference prompt: {self.prefix_checked - len(self.prefix_mismatches)}"
               f"/{self.prefix_checked} assistant turns"]
        out += [f"   MISMATCH {line}" for line in self.prefix_mismatches]
        if model_ref is None:
            out.append("3. stopping: skipped (no trained run yet; pass --model RUN_OR_MODEL)")
        else:
            out.append(f"3. {model_ref} ends its answer with the end-of-turn token: {self.stopped}/{self.stop_checked}")
            out += [f"   NO STOP {line}" for line in self.not_stopped]
        out += [f"   WARNING {line}" for line in self.warnings]
        return out


def marked(tokenizer, input_ids: list[int], targets: list[int]) -> str:
    """The rendered text with supervised tokens inside ⟦ ⟧ (token t is supervised when targets[t-1] is)."""
    supervised = [False] + [t != IGNORE for t in targets[:-1]]
    out, current, run = [], None, []
    for token, flag in zip(input_ids, supervised):
        if flag != current and run:
            text = tokenizer.decode(run)
            out.append(f"{START}{text}{END}" if current else text)
            run = []
        current = flag
        run.append(token)
    if run:
        text = tokenizer.decode(run)
        out.append(f"{START}{text}{END}" if current else text)
    return "".join(out)


def check_prefixes(tokenizer, conversations: list[tuple[str, list[dict]]], report: TemplateReport) -> None:
    """Each assistant turn's training sample must start with exactly the prompt inference feeds, and its answer
    must be supervised from the next token on."""
    renderer = Renderer(tokenizer, max_length=1 << 30)
    for where, messages in conversations:
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            samples = renderer.conversation(messages[: i + 1], where)
            if not samples:
                continue
            sample = samples[-1]
            prompt = chat_prompt_ids(tokenizer, messages[:i])[0].tolist()
            report.prefix_checked += 1
            if sample.input_ids[:len(prompt)] != prompt or sample.targets[len(prompt) - 1] == IGNORE:
                report.prefix_mismatches.append(
                    f"{where} turn {i}: training prefix {tokenizer.decode(sample.input_ids[:len(prompt)])[-80:]!r} "
                    f"!= inference prompt {tokenizer.decode(prompt)[-80:]!r}")


@torch.no_grad()
def check_stopping(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int, report: TemplateReport) -> None:
    stops = end_of_turn_ids(tokenizer)
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if not eos & set(stops):
        names = [tokenizer.convert_ids_to_tokens(s) for s in stops]
        report.warnings.append(f"generation_config.eos_token_id {sorted(eos)} does not include the end-of-turn "
                               f"token {names}: transformers pipelines, vLLM and llama.cpp will not stop at the "
                               "end of an answer; set generation_config.eos_token_id and save again")
    for messages in prompts:
        ids = chat_prompt_ids(tokenizer, messages).to(model.device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        report.stop_checked += 1
        if any(t in stops for t in new):
            report.stopped += 1
        else:
            report.not_stopped.append(f"{messages[-1]['content'][:60]!r} -> {tokenizer.decode(new)[:80]!r}...")


def run(cfg: Config, tokenizer, model, records: int, max_new_tokens: int) -> TemplateReport:
    report = TemplateReport()
    loaded = read_file(cfg.data.train[0].path, cfg.data.train[0].format, cfg.data.system_prompt)[:records]
    conversations = [(r.where, r.content) for r in loaded if not isinstance(r.content, str)]
    if conversations:
        renderer = Renderer(tokenizer, max_length=1 << 30, train_on=cfg.data.train_on)
        sample = renderer.conversation(conversations[0][1], conversations[0][0])[0]
        report.example = marked(tokenizer, sample.input_ids, sample.targets)
        check_prefixes(tokenizer, conversations, report)
    if model is not None:
        eval_files = cfg.data.eval or cfg.data.train
        held = read_file(eval_files[0].path, eval_files[0].format, cfg.data.system_prompt)[:records]
        prompts = [r.content[: max(i for i, m in enumerate(r.content) if m["role"] == "assistant")]
                   for r in held if not isinstance(r.content, str)]
        check_stopping(model, tokenizer, prompts, max_new_tokens, report)
    return report
