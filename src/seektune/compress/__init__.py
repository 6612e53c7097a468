"""Compression and export: quantized, pruned and GGUF models from a run or any model directory.

Every verb starts from `source.open_source` (an adapter merged into its full-precision base), writes its output
through `artifacts.write_artifact` (built aside, renamed into place) and records what it did in
`compression.json` (`record.py`), so the output is just another model for eval, chat and serve.
"""
