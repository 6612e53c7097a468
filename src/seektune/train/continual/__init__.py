"""Continual learning on the one loop: start from the earlier runs' final model, keep what they learned with EWC /
L2-SP (step hooks), replay of their data (a step plan) and layer freezing (what trains). `setup` is the loop's
one entry; each part is its own module."""

from seektune.train.continual.setup import Continual

__all__ = ["Continual"]
