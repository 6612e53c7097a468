"""The Data tab's steps without a browser: each runs the real `seektune data` / `check-template` command in the
project folder, and the page's summary, example, outputs and manifests are read back from what they wrote."""

import json
import os
import shutil
import stat

import pytest

from seektune.atomic import sha256
from seektune.errors import ConfigError
from seektune.ui import datasteps
from seektune.ui.project import Project


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


QA = [{"instruction": "On which days are flu vaccinations given?", "output": "Tuesdays and Thursdays."},
      {"instruction": "How long must patients fast before a blood draw?", "output": "Ten hours."},
      {"instruction": "What code is chest pain?", "output": "Code Amber."}]


def test_inspect_names_format_count_and_every_bad_record(tmp_path):
    _write(tmp_path / "data" / "d.jsonl", [QA[0], "{broken", QA[1], '{"foo": 1}', "also broken", QA[2]])
    summary, report, histogram = datasteps.inspect(Project(tmp_path), "data/d.jsonl", "deepseek")
    assert "format **alpaca**" in summary and "**3** records" in summary and "**3** bad records" in summary
    # two invalid-JSON lines: the manifest keeps only the first place of a reason, the page lists both
    for where in ("data/d.jsonl:2", "data/d.jsonl:4", "data/d.jsonl:5"):
        assert f"`{where}`" in summary
    assert "unknown record format" in summary and "records: 3" in report and "![" not in report
    assert histogram is not None and histogram.size[0] > 100            # the token-length histogram
    with pytest.raises(ConfigError, match="outside"):
        datasteps.inspect(Project(tmp_path), "../d.jsonl", "none")


def test_render_example_marks_the_supervised_answer(tmp_path, tiny_llama_dir):
    shutil.copytree(tiny_llama_dir, tmp_path / "tiny")
    _write(tmp_path / "train.jsonl", QA)
    page = datasteps.render_example(Project(tmp_path), "train.jsonl", "tiny")
    assert "<mark style='background:#ffe08a'>Tuesdays and Thursdays.&lt;|im_end|&gt;</mark>" in page
    assert page.count("<mark") == 2 and "On which days" in page     # the legend's mark and the answer's
    assert "template check passed" in page
    config = Project(tmp_path).state("data", "check-template", "train.jsonl.yaml")
    assert config.is_file() and str(tmp_path / "tiny") in config.read_text()


def test_clean_removes_duplicates_and_its_manifest_matches_the_output(tmp_path):
    _write(tmp_path / "train.jsonl", [QA[0], QA[1], QA[0], QA[2], QA[1]])
    report, output, manifest = datasteps.run_step(Project(tmp_path), "clean", ["train.jsonl"], {})
    assert output == tmp_path / ".seektune-ui" / "data" / "clean" / "train.clean.jsonl"
    assert _rows(output) == QA
    recorded = json.loads(manifest.read_text())["steps"][-1]
    assert recorded["outputs"][0]["sha256"] == sha256(output) and recorded["counts"]["in"] == 5
    assert "seektune data clean train.jsonl -o .seektune-ui/data/clean/train.clean.jsonl" in report
    assert "removed 2 x exact duplicate" in report
    assert datasteps.step_files(output) == [output, manifest]


def test_privacy_hides_emails_with_pseudonyms_stable_across_runs(tmp_path, monkeypatch):
    monkeypatch.delenv(datasteps.SECRET_ENV, raising=False)
    project = Project(tmp_path)
    _write(tmp_path / "a.jsonl", [{"instruction": "Mail alice@example.com today", "output": "Done."}])
    _write(tmp_path / "b.jsonl", [{"instruction": "Who is alice@example.com?", "output": "A patient."}])
    report, out_a, _ = datasteps.run_step(project, "privacy", ["a.jsonl"], {})
    _, out_b, _ = datasteps.run_step(project, "privacy", ["b.jsonl"], {})
    text_a, text_b = out_a.read_text(), out_b.read_text()
    assert "alice@example.com" not in text_a + text_b
    pseudonym = _rows(out_a)[0]["instruction"].split()[1]
    assert pseudonym in _rows(out_b)[0]["instruction"]                   # the same person in both files
    key = project.state("keys", "privacy.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and "--secret-file .seektune-ui/keys/privacy.key" in report
    assert datasteps.run_step(project, "privacy", ["a.jsonl"], {})[1].read_text() == text_a   # same key, same output
    assert out_a.with_name(out_a.name + ".privacy.jsonl") in datasteps.step_files(out_a)


def test_leakage_removes_and_reports_a_train_record_copied_into_test(tmp_path):
    _write(tmp_path / "train.jsonl", QA)
    _write(tmp_path / "test.jsonl", [{"instruction": "Unrelated question about parking?", "output": "Level 2."},
                                     QA[1]])
    with pytest.raises(ConfigError, match="test file"):
        datasteps.run_step(Project(tmp_path), "leakage", ["train.jsonl"], {})
    report, output, manifest = datasteps.run_step(Project(tmp_path), "leakage", ["train.jsonl"],
                                                  {"test": "test.jsonl"})
    assert _rows(output) == [QA[0], QA[2]]
    leaks = _rows(output.with_name(output.name + ".leaks.jsonl"))
    assert [leak["where"] for leak in leaks] == ["train.jsonl:2"]
    assert "leaks: {" in report and "--test test.jsonl" in report and manifest.is_file()


def test_upload_stays_in_the_uploads_folder(tmp_path):
    project = Project(tmp_path)
    temp = _write(tmp_path / "incoming" / "my data.jsonl", QA)
    for bad, match in (("../evil.jsonl", "without folders"), ("a/../../evil.jsonl", "without folders"),
                       ("..", "without folders"), ("notes.txt", "only JSON"), ("x.jsonl.exe", "only JSON")):
        with pytest.raises(ConfigError, match=match):
            datasteps.save_upload(project, temp, bad)
    saved = datasteps.save_upload(project, temp)
    assert saved == project.state("uploads", "my data.jsonl") and _rows(saved) == QA
    assert datasteps.save_upload(project, temp) == saved                 # the same file again: no copy
    other = _write(tmp_path / "incoming" / "2" / "my data.jsonl", QA[:1])
    assert datasteps.save_upload(project, other) == project.state("uploads", "my data-1.jsonl")
    assert _rows(saved) == QA                                             # never overwritten
    assert not (tmp_path / "evil.jsonl").exists()


def test_data_files_lists_data_but_not_environments_runs_or_ui_state(tmp_path):
    listed = ["data/train.jsonl", "eval.json", ".seektune-ui/uploads/u.jsonl", ".seektune-ui/data/clean/t.clean.jsonl"]
    hidden = [".venv/lib/site.json", ".venv-gpu/x.jsonl", "env2/lib/x.json", "runs/r/metrics.jsonl",
              "node_modules/p/package.json", ".git/x.json", ".cache/y.jsonl",
              ".seektune-ui/inspect/x/inspect.json", ".seektune-ui/jobs/r.json",
              ".seektune-ui/data/clean/t.clean.jsonl.manifest.json", "notes.txt",
              "models/tiny/config.json", "models/tiny/tokenizer_config.json", "adapter/adapter_config.json"]
    for rel in listed + hidden:
        _write(tmp_path / rel, ["{}"])
    (tmp_path / "env2" / "pyvenv.cfg").write_text("home = /usr\n")
    assert sorted(datasteps.data_files(Project(tmp_path))) == sorted(listed)
    assert len(datasteps.data_files(Project(tmp_path), limit=2)) == 2
