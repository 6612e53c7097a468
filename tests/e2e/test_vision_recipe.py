"""The vision demo's road through the real recipe (examples/vision/recipe.yaml) on the suite's tiny Llama: the
digits data, a LLaVA assembled with a new tower, the three stages and the comparison runs, both reports. Steps
are cut to a few; what is checked is that every stage hands the next a model it can load, and that the reports
hold every model the README's table reads."""

import json
from pathlib import Path

import pytest

from seektune.cli import main

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "vision" / "recipe.yaml"
pytestmark = pytest.mark.slow


def test_the_vision_recipe_walks_the_three_stages_and_the_comparisons(tmp_path, tiny_llama_dir, capsys):
    pytest.importorskip("sklearn")
    work = tmp_path / "work"
    assert main(["recipe", str(RECIPE), f"model={tiny_llama_dir}", f"work={work}", "stage1_steps=2",
                 "stage2_steps=2", "stage3_steps=2", "ce_steps=2", "limit=6"]) == 0
    assert "| **total** |" in capsys.readouterr().out
    align = json.loads((work / "eval-align" / "report.json").read_text())["tasks"]["digit-captions"]["models"]
    assert {m: r["clean"]["by"] for m, r in align.items()} == {
        "clip": "alignment", "clip-no-stage1": "alignment", "caption-ce": "likelihood"}
    assert all(r["clean"]["images"] == 6 and 0 <= r["clean"]["image_to_text_recall@1"] <= 1 for r in align.values())
    qa = json.loads((work / "eval-qa" / "report.json").read_text())["tasks"]["digit-questions"]["models"]
    assert set(qa) == {"base", "three-stages", "no-stage1", "no-stage2"}
    assert all("accuracy" in r["clean"] for r in qa.values())
    adapter = json.loads((work / "stage3" / "final" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(work / "stage2" / "final")   # stage 3 starts from stage 2
