"""Recipes: a YAML list of seektune commands run in order as one resumable road (data -> train -> evaluate ->
compress -> serve), each stage in its own process with its output streamed and logged."""
