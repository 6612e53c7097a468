"""Data engineering steps behind `seektune data ...`: each reads JSONL, writes JSONL and a manifest."""
