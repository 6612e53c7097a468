"""`seektune check-template`: the three template mistakes that silently ruin fine-tunes.

1. What is supervised: one rendered training example with the supervised spans marked.
2. Train/inference prefix: for every assistant turn of the first records, the tokens before the answer in
   training must be exactly the prompt the model gets at inference (`add_generation_prompt=True`). This
   catches templates that rewrite history (DeepSeek-R1 drops earlier `<think>` blocks) and `<think>`
   openers placed on the wrong side.
3. Stopping: the tuned model, on real prompts, must end its answers with the end-of-turn token; and the
   saved generation_config must list that token, or other servers will not stop where seektune does.
Reasoning (R1-style `<think>` blocks): every assistant turn's generated text in the training sample must hold
at most one think block, equal the template's own rendering of the same (reasoning, answer) pair, parse back into
that pair the way chat, eval and the server parse answers, and no earlier turn's reasoning may leak into the
prompt of a later one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from seektune.config import Config
from seektune.data.formats import read_file
from seektune.data.reasoning import THINK_CLOSE, THINK_OPEN, parse_generated, split_inline
from seektune.data.render import IGNORE, Renderer, end_of_turn_ids, history_messages
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
    reasoning_checked: int = 0
    reasoning_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.prefix_mismatches and self.stopped == self.stop_checked and not self.warnings
                and not self.reasoning_problems)

    def lines(self, model_ref: str | None) -> list[str]:
        """The report `seektune check-template` prints."""
        out = ["1. a training example (supervised tokens in \u27e6 \u27e7):\n" + self.example + "\n",
               f"2. training prefix == inference prompt: {self.prefix_checked - len(self.prefix_mismatches)}"
               f"/{self.prefix_checked} assistant turns"]
        out += [f"   MISMATCH {line}" for line in self.prefix_mismatches]
        if self.reasoning_checked:
            out.append(f"   reasoning blocks as the template writes them, once, not in later prompts: "
                       f"{self.reasoning_checked - len(self.reasoning_problems)}/{self.reasoning_checked} turns")
            out += [f"   REASONING {line}" for line in self.reasoning_problems]
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


def check_prefixes(tokenizer, conversations: list[tuple[str, list[dict]]], report: TemplateReport,
                   reasoning: str = "train") -> None:
    """Each assistant turn's training sample must start with exactly the prompt inference feeds, and its answer
    must be supervised from the next token on (its reasoning too, unless the reasoning is masked)."""
    renderer = Renderer(tokenizer, max_length=1 << 30, reasoning=reasoning)
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
            masked = reasoning == "mask" and bool(renderer.answer_parts(messages[:i], m["content"],
                                                                        m.get("reasoning")).thought)
            if sample.input_ids[:len(prompt)] != prompt or (sample.targets[len(prompt) - 1] == IGNORE) != masked:
                report.prefix_mismatches.append(
                    f"{where} turn {i}: training prefix {tokenizer.decode(sample.input_ids[:len(prompt)])[-80:]!r} "
                    f"!= inference prompt {tokenizer.decode(prompt)[-80:]!r}")


def _own_rendering(renderer: Renderer, history: list[dict], reasoning: str | None, answer: str) -> str:
    """The turn as the template itself writes the pair: through `reasoning_content` when it renders that,
    else DeepSeek's canonical `<think>\\n{reasoning}\\n</think>\\n\\n{answer}` (an empty block when there is no
    reasoning, for templates whose prompt opens one), less the opener the prompt already holds."""
    history = history_messages(history)
    prompt = renderer.render_text(history, True)
    if renderer.renders_reasoning:
        turn = {"role": "assistant", "content": answer, **({"reasoning_content": reasoning} if reasoning else {})}
        full = renderer.render_text([*history, turn], False)
        end = renderer.answer_parts(history, "x").end
        return full[len(prompt):len(full) - len(end)] if full.startswith(prompt) and full.endswith(end) else full
    opened = prompt.rstrip().endswith(THINK_OPEN)
    if not reasoning and not opened:
        return answer
    canonical = f"{THINK_OPEN}\n{reasoning or ''}\n{THINK_CLOSE}\n\n{answer}"
    return canonical[len(THINK_OPEN) + 1:] if opened else canonical


def _pair(message: dict) -> tuple[str | None, str]:
    """(reasoning, answer) of an assistant message, also when its reasoning is still inline."""
    try:
        inline, answer = split_inline(message["content"])
    except ValueError:
        return message.get("reasoning"), message["content"]
    return message.get("reasoning") or inline, answer


def check_reasoning(tokenizer, conversations: list[tuple[str, list[dict]]], report: TemplateReport,
                    reasoning: str = "train", renderer: Renderer | None = None) -> None:
    renderer = renderer or Renderer(tokenizer, max_length=1 << 30, reasoning=reasoning)
    probe = renderer.answer_parts([{"role": "user", "content": "q"}], "a")
    if not (probe.thought or renderer.renders_reasoning or any(
            _pair(m)[0] for _, messages in conversations for m in messages if m["role"] == "assistant")):
        return   # no reasoning in the data and none in the template: nothing to check
    for where, messages in conversations:
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            report.reasoning_checked += 1
            expected, answer_expected = _pair(m)
            expected = expected if reasoning != "drop" else None
            sample = renderer.conversation(messages[: i + 1], where)[-1]
            prompt = renderer.prompt_ids(messages[:i])
            marker = renderer.answer_parts(messages[:i], "x").end.rstrip()   # the template's end of turn
            text = tokenizer.decode(sample.input_ids[len(prompt):])
            text = text[:text.index(marker)] if marker and marker in text else text
            opened = tokenizer.decode(prompt).rstrip().endswith(THINK_OPEN)
            problems = []
            if (THINK_OPEN * opened + text).count(THINK_OPEN) > 1 or text.count(THINK_CLOSE) > 1:
                problems.append(f"a doubled or nested think block: {text[:80]!r}")
            own = _own_rendering(renderer, messages[:i], expected, answer_expected)
            if text != own:
                problems.append(f"target {text[:60]!r} != the template's own rendering {own[:60]!r}")
            thought, answer, _ = parse_generated(text, opened)
            if (thought, answer) != (expected, answer_expected.strip()):
                problems.append(f"parses back as reasoning {str(thought)[:30]!r} + answer {answer[:30]!r}")
            leaked = [j for j in range(i) if messages[j]["role"] == "assistant" and _pair(messages[j])[0]
                      and _pair(messages[j])[0] in tokenizer.decode(prompt)]
            if leaked:
                problems.append(f"the reasoning of turn {leaked[0]} is in this turn's prompt (history)")
            report.reasoning_problems += [f"{where} turn {i}: {p}" for p in problems]


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
    data = cfg.data
    loaded = read_file(data.train[0].path, data.train[0].format, data.system_prompt, data.on_error,
                       reasoning_field=data.reasoning_field)[:records]   # bad records skipped as training skips them
    conversations = [(r.where, r.content) for r in loaded if not isinstance(r.content, str)]
    if conversations:
        renderer = Renderer(tokenizer, max_length=1 << 30, train_on=data.train_on, reasoning=data.reasoning)
        sample = renderer.conversation(conversations[0][1], conversations[0][0])[0]
        report.example = marked(tokenizer, sample.input_ids, sample.targets)
        check_prefixes(tokenizer, conversations, report, data.reasoning)
        check_reasoning(tokenizer, conversations, report, data.reasoning)
    if model is not None:
        eval_files = cfg.data.eval or cfg.data.train
        held = read_file(eval_files[0].path, eval_files[0].format, cfg.data.system_prompt, cfg.data.on_error,
                         reasoning_field=cfg.data.reasoning_field)[:records]
        prompts = [r.content[: max(i for i, m in enumerate(r.content) if m["role"] == "assistant")]
                   for r in held if not isinstance(r.content, str)]
        check_stopping(model, tokenizer, prompts, max_new_tokens, report)
    return report
