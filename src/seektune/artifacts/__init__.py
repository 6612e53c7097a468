"""Runs and artifacts: the run directory's layout (RunDir), and every model directory seektune reads or writes
(Artifact: its kind, base model and method record; load, describe, merge). Verbs open models only through here."""

from seektune.artifacts.adapters import COMBINATIONS, combine, load_many
from seektune.artifacts.artifact import METHOD_FILE, Artifact, find, load_for_inference, open_artifact, write_artifact
from seektune.artifacts.run import RunDir

__all__ = ["COMBINATIONS", "METHOD_FILE", "Artifact", "RunDir", "combine", "find", "load_for_inference", "load_many",
           "open_artifact", "write_artifact"]
