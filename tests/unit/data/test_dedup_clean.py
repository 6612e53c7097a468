import json

import numpy as np

from seektune.cli import main
from seektune.data.pipeline.clean import Repair, html_to_text, quality_problem, windows
from seektune.data.pipeline.dedup import Deduplicator, KeyIndex

BASE = ("The clinic offers seasonal flu vaccinations every Tuesday and Thursday morning between eight and noon, "
        "and patients should bring their insurance card and a list of current medications to the appointment. "
        "Children under twelve need a parent or guardian present, and anyone with a fever on the day is asked to "
        "call the front desk to rebook instead of coming in.")
NEAR = BASE.replace("Thursday", "Friday")   # one word of 70 changed: Jaccard of word 3-grams ~0.92
DISTINCT = ("Patients must fast for ten hours before a blood draw; water is allowed, coffee is not, and the lab "
            "opens at seven so the earliest slots fill quickly during the winter months.")


def test_near_duplicate_removed_distinct_kept():
    d = Deduplicator(threshold=0.8)
    assert d.check(BASE) is None
    assert d.check(NEAR) == "near duplicate"
    assert d.check("  the CLINIC offers " + BASE[len("The clinic offers "):]) == "exact duplicate"  # case/space
    assert d.check(DISTINCT) is None


def test_key_index_matches_a_python_set_across_merges():
    rng = np.random.default_rng(0)
    index, reference = KeyIndex(buffer=512), set()  # small buffer: many merges
    for _ in range(3000):
        keys = rng.integers(0, 50_000, size=3, dtype=np.uint64)
        assert index.contains_any(keys) == any(int(k) in reference for k in keys)
        index.add(keys)
        reference.update(int(k) for k in keys)
    assert set(index._sorted.tolist()) | index._pending == reference
    assert (np.diff(index._sorted.astype(np.float64)) >= 0).all()


def test_repair_normalises_and_strips_controls():
    text = "ＡＢＣ１２３\u200b  hello\x07 \r\n\r\n\r\n\r\nworld\ufeff  "
    assert Repair()(text) == "ABC123 hello\n\nworld"
    assert Repair(normal_form=None)("ＡＢ") == "ＡＢ"


def test_html_to_text_drops_scripts_and_keeps_blocks():
    title, text = html_to_text("<html><head><title>T</title><script>var x=1;</script></head><body><nav>menu</nav>"
                               "<h1>Heading</h1><p>First para.</p><p>Second&nbsp;para.</p></body></html>")
    assert title == "T"
    assert text == "Heading\nFirst para.\nSecond para."


def test_quality_rules():
    assert quality_problem("!!!! #### 1234 5678 ---- ....") == "mostly symbols or digits"
    assert quality_problem("buy now\nbuy now\nbuy now\nreal line") == "repeated lines"
    assert quality_problem("a" * 40).startswith("a character repeated")
    assert quality_problem(BASE) is None


def test_windows_cover_everything_with_the_requested_overlap():
    assert windows(list(range(10)), 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert windows(list(range(11)), 4, 4) == [(0, 4), (4, 8), (7, 11)]
    assert windows(list(range(3)), 4, 2) == [(0, 3)]


def test_clean_cli_dedups_filters_reads_html_and_writes_manifest(tmp_path):
    data = tmp_path / "in.jsonl"
    rows = [{"text": BASE}, {"text": NEAR}, {"text": DISTINCT}, {"text": "?? !!"}, {"text": BASE.upper()}]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    page = tmp_path / "pages"
    page.mkdir()
    (page / "a.html").write_text("<html><title>Flu</title><body><p>" + DISTINCT.replace("blood", "urine")
                                 + "</p></body></html>")
    out = tmp_path / "out.jsonl"
    assert main(["data", "clean", str(data), str(page), "-o", str(out), "--quality"]) == 0
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in kept[:1]] == [DISTINCT.replace("blood", "urine")]  # html first, then JSONL
    assert [r["text"] for r in kept[1:]] == [BASE, DISTINCT]
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    step = manifest["steps"][-1]
    assert step["counts"]["in"] == 6 and step["counts"]["out"] == 3
    assert step["counts"]["removed"] == {"exact duplicate": 1, "near duplicate": 1,
                                         "quality: mostly symbols or digits": 1}
    assert step["inputs"][0]["sha256"] and step["outputs"][0]["path"] == str(out)


def test_reproduce_reruns_the_lineage_and_checks_hashes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in (BASE, NEAR, DISTINCT)) + "\n")
    assert main(["data", "clean", "in.jsonl", "-o", "a.jsonl"]) == 0
    assert main(["data", "convert", "a.jsonl", "-o", "b.jsonl", "--to", "text"]) == 0
    steps = json.loads((tmp_path / "b.jsonl.manifest.json").read_text())["steps"]
    assert [s["step"] for s in steps] == ["clean", "convert"]
    (tmp_path / "a.jsonl").write_text("tampered\n")
    assert main(["data", "reproduce", "b.jsonl.manifest.json"]) == 0
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2


def test_clean_windows_long_documents_and_filters_by_perplexity(tmp_path, tiny_llama_dir):
    doc = " ".join(f"word{i}" for i in range(40))
    data = tmp_path / "docs.jsonl"
    data.write_text(json.dumps({"id": "d1", "text": doc}) + "\n" + json.dumps({"text": "short one"}) + "\n")
    out = tmp_path / "w.jsonl"
    assert main(["data", "clean", str(data), "-o", str(out), "--window", "16", "--stride", "12", "--no-dedup",
                 "--tokenizer", str(tiny_llama_dir)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    windows_meta = [r["metadata"] for r in rows if "window" in r.get("metadata", {})]
    assert len(windows_meta) >= 3 and all(m["source_id"] == "d1" for m in windows_meta)
    spans = [m["tokens"] for m in windows_meta]
    assert spans[0][0] == 0 and all(b - a <= 16 for a, b in spans) and spans[1][0] == 12
    assert rows[-1]["text"] == "short one"
    # a random tiny model has perplexity around its vocabulary size: a low ceiling drops all, a high one none
    for ceiling, kept in (("5", 0), ("1e9", len(rows))):
        assert main(["data", "clean", str(out), "-o", str(tmp_path / f"p{ceiling}.jsonl"), "--no-dedup",
                     "--max-perplexity", ceiling, "--perplexity-model", str(tiny_llama_dir)]) == 0
        assert len((tmp_path / f"p{ceiling}.jsonl").read_text().splitlines()) == kept
