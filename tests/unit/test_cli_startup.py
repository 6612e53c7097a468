"""Commands that need no model start without importing torch, and the metrics import their scorers on use: every
recipe stage and CLI call is its own process, and torch + transformers cost ~10 s to import on 2 cores."""

import json
import subprocess
import sys

PROBE = """
import sys
from seektune.cli import main
assert main(["data", "clean", sys.argv[1], "-o", sys.argv[2]]) == 0
import seektune.metrics.text
print(sorted(m for m in ("torch", "transformers", "nltk", "rouge_score", "sacrebleu") if m in sys.modules))
"""


def test_data_clean_and_the_text_metrics_import_no_heavy_library(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"instruction": "Which days?", "output": "Tuesdays and Thursdays."}) + "\n")
    done = subprocess.run([sys.executable, "-c", PROBE, str(source), str(tmp_path / "out.jsonl")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 1
