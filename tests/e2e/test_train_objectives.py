"""Preference objectives through the real `seektune train`: DPO learns to prefer the chosen answers, the reward
model ranks pairs, GRPO raises its mean reward; each artifact loads and scores with plain transformers/peft."""

import json

import pytest
import torch

from seektune.cli import main
from tests.conftest import QA, write_config

pytestmark = pytest.mark.slow

TRAIN = {"micro_batch_size": 4, "learning_rate": 5e-3, "precision": "fp32", "warmup_ratio": 0.0, "seed": 3}


def write_pairs(path):
    """Each question's right answer over another question's answer."""
    path.write_text("".join(json.dumps({"prompt": q, "chosen": a, "rejected": QA[(i + 3) % len(QA)][1]}) + "\n"
                            for i, (q, a) in enumerate(QA)))
    return path


def write_alpaca(path):
    path.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in QA))
    return path


def write_prompts(path):
    path.write_text("".join(json.dumps({"question": q, "reference": a, "key_fact": a.split()[0]}) + "\n"
                            for q, a in QA))
    return path


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _train(tmp_path, model_dir, data_file, **sections):
    cfg = write_config(tmp_path, model_dir, data_file, **sections)
    assert main(["train", str(cfg)]) == 0
    return tmp_path / "runs/run"


def test_dpo_prefers_the_chosen_answers_and_loads_with_plain_peft(tmp_path, tiny_llama_dir, tiny_tokenizer):
    from peft import AutoPeftModelForCausalLM

    from seektune.data.preference import collate_pairs, read_pairs, render_pair
    from seektune.data.render import Renderer
    from seektune.train.objectives.preference import sequence_logps

    data = write_pairs(tmp_path / "prefs.jsonl")
    run = _train(tmp_path, tiny_llama_dir, data, objective={"name": "dpo"}, data={"eval": [str(data)]},
                 train={**TRAIN, "max_steps": 16, "eval_every": 8})
    metrics = _metrics(run)
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)   # policy == reference at the start: -log sigmoid(0)
    assert losses[-1] < losses[0] - 0.03
    final = [m for m in metrics if "eval_preference_accuracy" in m][-1]
    assert final["eval_preference_accuracy"] == 1.0 and final["eval_reward_margin"] > 0
    assert json.loads((run / "final/seektune_method.json").read_text())["objective"] == "dpo"

    # plain peft: the adapter's log-prob margin over the base (adapter off) is positive on every pair
    model = AutoPeftModelForCausalLM.from_pretrained(run / "final").eval()
    renderer = Renderer(tiny_tokenizer, 64, train_on="last_assistant")
    rows = [render_pair(renderer, r) for r in read_pairs(data)]
    batch = collate_pairs(rows, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        policy, _ = sequence_logps(model, **batch, selective_head=False)
        with model.disable_adapter():
            ref, _ = sequence_logps(model, **batch, selective_head=False)
    ratio = policy - ref
    chosen, rejected = ratio.chunk(2)
    assert (chosen > rejected).all()
    assert 0.1 * (chosen - rejected).mean().item() == pytest.approx(final["eval_reward_margin"], rel=1e-4)


def test_reward_model_ranks_pairs_and_scores_the_same_without_seektune(tmp_path, tiny_llama_dir, capsys):
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer

    from seektune.inference.reward_model import RewardModel

    data = write_pairs(tmp_path / "prefs.jsonl")
    run = _train(tmp_path, tiny_llama_dir, data, objective={"name": "reward"}, data={"eval": [str(data)]},
                 method={"name": "lora", "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}},
                 train={**TRAIN, "max_steps": 40, "learning_rate": 1e-2, "eval_every": 20})
    final = [m for m in _metrics(run) if "eval_pair_accuracy" in m][-1]
    assert final["eval_pair_accuracy"] >= 0.875, final

    rm = RewardModel(run)
    prompts = [[{"role": "user", "content": q}] for q, _ in QA] * 2
    answers = [{"role": "assistant", "content": a} for _, a in QA] + \
              [{"role": "assistant", "content": QA[(i + 3) % len(QA)][1]} for i in range(len(QA))]
    ours = rm.score(prompts, answers)
    plain = AutoPeftModelForSequenceClassification.from_pretrained(run / "final", num_labels=1).eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    with torch.no_grad():
        theirs = [plain(**tokenizer(tokenizer.apply_chat_template(p + [a], tokenize=False), return_tensors="pt",
                                    add_special_tokens=False)).logits[0, 0].item() for p, a in zip(prompts, answers)]
    assert ours == pytest.approx(theirs, abs=1e-5)
    chosen, rejected = ours[:len(QA)], ours[len(QA):]
    assert sum(c > r for c, r in zip(chosen, rejected)) / len(QA) == final["eval_pair_accuracy"]

    # best-of-N with it: every kept answer is the reward model's favourite of its candidates
    prompts, out = write_prompts(tmp_path / "questions.jsonl"), tmp_path / "answers.jsonl"
    assert main(["generate", str(tiny_llama_dir), "--prompts", str(prompts), "--best-of", "3", "--reward", str(run),
                 "--max-new-tokens", "6", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == len(QA)
    for r in records:
        assert len(r["candidates"]) == 3 and r["reward"] == max(c["reward"] for c in r["candidates"])
        assert r["answer"] == next(c["answer"] for c in r["candidates"] if c["reward"] == r["reward"])
    assert main(["generate", str(tiny_llama_dir), "--prompts", str(prompts), "--best-of", "2",
                 "--out", str(out)]) == 2   # no reward model to choose with
    assert main(["chat", str(run), "--prompt", "hi"]) == 2   # a reward model scores, it does not generate
    assert "is a reward model" in capsys.readouterr().err


def test_grpo_raises_the_mean_reward(tmp_path, tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    data = write_prompts(tmp_path / "prompts.jsonl")
    run = _train(tmp_path, tiny_llama_dir, data, method={"name": "full"},
                 objective={"name": "grpo", "beta": 0.0, "group_size": 8, "max_new_tokens": 4,
                            "rewards": ["regex:^[A-Z]"]},   # the answer starts with a capital letter
                 train={**TRAIN, "max_steps": 30, "learning_rate": 1e-2})
    rewards = [m["reward"] for m in _metrics(run) if "reward" in m]
    assert len(rewards) == 30
    assert sum(rewards[-6:]) / 6 > sum(rewards[:6]) / 6 + 0.15, rewards
    first = _metrics(run)[0]
    assert {"reward_std", "kl", "completion_length", "finished", "reward_regex:^[A-Z]"} <= set(first)
    assert first["completion_length"] <= 4
    AutoModelForCausalLM.from_pretrained(run / "final")   # a plain transformers directory


def test_grpo_with_a_lora_adapter_keeps_a_kl_to_the_base(tmp_path, tiny_llama_dir):
    data = write_prompts(tmp_path / "prompts.jsonl")
    run = _train(tmp_path, tiny_llama_dir, data,
                 objective={"name": "grpo", "group_size": 4, "max_new_tokens": 6, "rewards": ["length", "format"],
                            "reward_weights": [1.0, 0.5], "max_length_chars": 8},
                 train={**TRAIN, "max_steps": 4})
    metrics = [m for m in _metrics(run) if "reward" in m]
    assert metrics[0]["kl"] == 0.0 and metrics[-1]["kl"] > 0   # the first step samples from the base itself
    for m in metrics:
        assert m["reward"] == pytest.approx(m["reward_length"] + 0.5 * m["reward_format"])


RESUMED = {   # one per objective family: each checkpoint must carry what its objective needs
    "dpo": ("pairs", {"name": "dpo"}, {}, 40),
    "reward": ("pairs", {"name": "reward"}, {}, 40),
    "grpo": ("prompts", {"name": "grpo", "group_size": 4, "max_new_tokens": 6, "rewards": ["length"],
                         "max_length_chars": 10}, {"lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.1}}, 24),
    "kd": ("sft", {"name": "kd", "teacher": "<base>", "alpha": 0.5, "divergence": "jsd"}, {}, 24),
}


@pytest.mark.parametrize("objective", RESUMED)
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, tiny_llama_dir, objective):
    """Killed right after a checkpoint and resumed, the run ends bit-for-bit equal to an uninterrupted one
    (GRPO: the same sampled answers too, so the same rewards)."""
    from safetensors.torch import load_file

    from tests.e2e.test_resume import kill_after_checkpoint

    kind, settings, method, steps = RESUMED[objective]
    writer = {"pairs": write_pairs, "prompts": write_prompts, "sft": write_alpaca}[kind]
    data = writer(tmp_path / "data.jsonl")
    if settings.get("teacher") == "<base>":   # KD: the base teaches its own LoRA-tuned copy
        settings = {**settings, "teacher": str(tiny_llama_dir)}
    sections = dict(objective=settings, method={"name": "lora", **method},
                    train={**TRAIN, "max_steps": steps, "micro_batch_size": 2, "gradient_accumulation_steps": 2,
                           "save_every": 4})
    killed = write_config(tmp_path / "killed", tiny_llama_dir, data, **sections)
    run = tmp_path / "killed/runs/run"
    kill_after_checkpoint(killed, run, timeout=120)
    assert main(["train", str(killed), "--resume"]) == 0   # in-process: only the killed run needs its own

    straight = _train(tmp_path / "straight", tiny_llama_dir, data, **sections)
    a = load_file(run / "final/adapter_model.safetensors")
    b = load_file(straight / "final/adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    curve = {"dpo": "preference_accuracy", "reward": "pair_accuracy", "grpo": "reward", "kd": "kd_divergence"}[objective]
    assert [(m["step"], m["loss"], m[curve]) for m in _metrics(run) if "loss" in m] == \
        [(m["step"], m["loss"], m[curve]) for m in _metrics(straight) if "loss" in m]


def test_kd_pulls_a_student_towards_its_teacher(tmp_path, tiny_llama_dir, tiny_tokenizer, alpaca_file, capsys):
    from transformers import AutoModelForCausalLM

    from tests.conftest import make_tiny_llama

    teacher = _train(tmp_path / "teacher", tiny_llama_dir, alpaca_file, method={"name": "full"},
                     train={**TRAIN, "max_steps": 30, "learning_rate": 3e-3})   # peaked, far from the student
    student = make_tiny_llama(tmp_path / "student-model", tiny_tokenizer, seed=1, layers=1)  # smaller, other init
    run = _train(tmp_path / "kd", student, alpaca_file, method={"name": "full"},
                 objective={"name": "kd", "teacher": str(teacher), "alpha": 0.9, "temperature": 1.0,
                            "divergence": "forward_kl"},
                 train={**TRAIN, "max_steps": 20, "learning_rate": 3e-3})
    divergences = [m["kd_divergence"] for m in _metrics(run) if "kd_divergence" in m]
    assert len(divergences) == 20 and divergences[-1] < 0.3 * divergences[0]
    AutoModelForCausalLM.from_pretrained(run / "final")   # the student alone, a plain transformers directory

    other = tiny_tokenizer.__class__.from_pretrained(tiny_llama_dir)
    other.add_tokens(["<extra>"])
    stranger = make_tiny_llama(tmp_path / "stranger", other)
    cfg = write_config(tmp_path / "bad", student, alpaca_file, method={"name": "full"},
                       objective={"name": "kd", "teacher": str(stranger)})
    capsys.readouterr()
    assert main(["train", str(cfg)]) == 2
    assert "has another tokenizer" in capsys.readouterr().err
