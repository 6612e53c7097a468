"""Errors a user can act on. The CLI prints these without a traceback and exits non-zero."""


class SeektuneError(Exception):
    """Base class: the message says what is wrong and what to do next."""


class ConfigError(SeektuneError):
    """A config key is unknown or its value is invalid."""


class DataError(SeektuneError):
    """A data file or record is malformed; the message names file:line."""


class ModelError(SeektuneError):
    """A model cannot be found, verified or loaded."""


class CheckpointError(SeektuneError):
    """A checkpoint is missing, incomplete or does not match the run."""


class TrainingStopped(SeektuneError):
    """Training was asked to stop (SIGTERM) and left a checkpoint that --resume continues from."""
