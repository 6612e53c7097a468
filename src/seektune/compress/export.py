"""`seektune export --format gguf`: one GGUF file for llama.cpp, Ollama and LM Studio, with an Ollama Modelfile
beside it (the chat template, the run's system prompt and the end-of-turn stops) and its compression record.
The file is written aside and renamed into place, so a crash leaves the previous export whole."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from seektune.atomic import write_text
from seektune.compress.gguf_export import write_gguf
from seektune.compress.options import ExportOptions
from seektune.compress.record import CompressionRecord, weights_bytes
from seektune.compress.source import Source, open_source
from seektune.data.render import end_of_turn_ids
from seektune.errors import ConfigError, DataError

# Ollama's own ChatML template (Go text/template), for templates built on <|im_start|> turns
_CHATML = '''{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
'''


def modelfile(source: Source, gguf_name: str) -> str:
    """An Ollama Modelfile: `ollama create NAME -f <this file>`."""
    tokenizer = source.tokenizer
    lines = [f"# ollama create {Path(gguf_name).stem} -f {Path(gguf_name).stem}.Modelfile", f"FROM ./{gguf_name}"]
    template = tokenizer.chat_template or ""
    if "<|im_start|>" in template:
        lines.append(f'TEMPLATE """{_CHATML}"""')
    else:
        lines.append("# TEMPLATE: Ollama reads the chat template from the GGUF metadata (tokenizer.chat_template)")
    system = source.run_cfg.data.system_prompt if source.run_cfg is not None else None
    if system:
        lines.append(f'SYSTEM """{system}"""')
    try:
        stops = end_of_turn_ids(tokenizer)
    except DataError:
        stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for token in dict.fromkeys(tokenizer.convert_ids_to_tokens(stops)):
        lines.append(f'PARAMETER stop "{token}"')
    return "\n".join(lines) + "\n"


def export(ref: str, opts: ExportOptions) -> CompressionRecord:
    out = Path(opts.out)
    if out.suffix != ".gguf":
        raise ConfigError(f"--out {out}: a GGUF export is one file ending in .gguf")
    source = open_source(ref)
    record = CompressionRecord(f"gguf-{opts.type}", {"format": opts.format, "type": opts.type}, str(ref),
                               source.base_model, source.bytes_before)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tempfile.TemporaryDirectory(prefix=".tokenizer-", dir=out.parent) as tokenizer_dir:
        source.tokenizer.save_pretrained(tokenizer_dir)
        record.settings.update(write_gguf(source.model, source.tokenizer, Path(tokenizer_dir), tmp, opts.type,
                                          source.artifact.name))
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    record.bytes_after = weights_bytes(out)
    write_text(out.with_suffix(".Modelfile"), modelfile(source, out.name))
    record.write_beside(out)
    return record
