"""GGUF export on `gguf.GGUFWriter` (the package transformers itself reads GGUF with), for the architectures we
ship and can check: Llama (SmolLM2, Mistral-style) and Qwen2.

What llama.cpp's own converter does, for these architectures: llama.cpp's tensor names (`gguf.TensorNameMap`),
the query/key rows of Llama permuted to GGML's interleaved RoPE (transformers undoes it on read), the BPE
vocabulary with token types, merges and special ids (`gguf.SpecialVocab`), the pre-tokenizer named by the hash
of a reference text's tokens, and the chat template in the metadata. Norms and biases stay f32; matrices take
the chosen type, except rows that do not fill a 32-weight block (kept f16). Q4_0 keeps the embeddings and the
output head at Q8_0, as llama.cpp's quantize tool keeps them above 4 bits.
"""

from __future__ import annotations

import logging
from hashlib import sha256
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from seektune.errors import ConfigError

log = logging.getLogger("seektune.compress")

# hashes of llama.cpp's reference text tokenized (convert_hf_to_gguf.get_vocab_base_pre) -> pre-tokenizer name
_CHKTXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ '
           '🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ '
           '------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, '
           '\'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL')
_PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "877081d19cf6996e2c4ff0e1236341e9b7bde288f5311a56a937f0afbbb3aeb5": "deepseek-v3",
    "0fe1cf6eda062318a1af7270f3331a85c539a01778ff948e24388e949c5282f4": "gpt-2",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
}
_ARCHES = {"llama": ("LLAMA", True), "mistral": ("LLAMA", True), "qwen2": ("QWEN2", False)}  # -> (arch, permute)
TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")


def pre_tokenizer(tokenizer) -> str:
    digest = sha256(str(tokenizer.encode(_CHKTXT)).encode()).hexdigest()
    name = _PRE_TOKENIZERS.get(digest)
    if name is None:
        log.warning("GGUF: this tokenizer's pre-tokenizer is not one llama.cpp names; writing 'default' (llama.cpp "
                    "may split text differently from transformers)")
    return name or "default"


def _vocab(tokenizer, vocab_size: int):
    import gguf

    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _permute(weights: torch.Tensor, n_head: int) -> torch.Tensor:
    """HF's rotate-half RoPE layout -> GGML's interleaved pairs (llama.cpp's LlamaModel.permute)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _tensor_type(name: str, array: np.ndarray, wanted: str):
    import gguf

    q = gguf.GGMLQuantizationType
    if array.ndim == 1 or wanted == "f32":
        return q.F32
    if wanted in ("q8_0", "q4_0") and array.shape[-1] % 32:
        return q.F16
    if wanted == "q4_0" and name in ("token_embd.weight", "output.weight"):
        return q.Q8_0
    return {"f16": q.F16, "bf16": q.BF16, "q8_0": q.Q8_0, "q4_0": q.Q4_0}[wanted]


def _file_type(wanted: str):
    import gguf

    f = gguf.LlamaFileType
    return {"f32": f.ALL_F32, "f16": f.MOSTLY_F16, "bf16": f.MOSTLY_BF16, "q8_0": f.MOSTLY_Q8_0,
            "q4_0": f.MOSTLY_Q4_0}[wanted]


def _metadata(writer, config, name: str, wanted: str) -> None:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.num_key_value_heads or heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    rope = getattr(config, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is not None:
        writer.add_rope_freq_base(float(theta))
    if rope.get("rope_type", "default") not in ("default", None):
        raise ConfigError(f"GGUF export: rope scaling {rope.get('rope_type')!r} is not written yet; export a model "
                          "with plain RoPE")
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(_file_type(wanted))


def write_gguf(model: nn.Module, tokenizer, tokenizer_dir: Path, out: Path, wanted: str, name: str) -> dict:
    """Write `model` as one GGUF file at `out`; returns the tensor types used, for the record."""
    import gguf

    config = model.config
    if config.model_type not in _ARCHES:
        raise ConfigError(f"GGUF export supports {', '.join(_ARCHES)}; this model is {config.model_type} (use "
                          "llama.cpp's convert_hf_to_gguf.py on the merged model directory)")
    arch_name, permute = _ARCHES[config.model_type]
    arch = getattr(gguf.MODEL_ARCH, arch_name)
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    _metadata(writer, config, name, wanted)
    tokens, types = _vocab(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    pre = pre_tokenizer(tokenizer)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(tokenizer_dir, load_merges=True, n_vocab=config.vocab_size)
    special.add_to_gguf(writer)
    if special.chat_template is None and tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)

    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    counts: dict[str, int] = {}
    state = model.state_dict()
    for hf_name, tensor in tqdm(state.items(), desc="gguf", leave=False):
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue   # llama.cpp reuses token_embd when there is no output tensor
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue
            raise ConfigError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
        data = tensor.detach().float()
        if permute and hf_name.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif permute and hf_name.endswith("k_proj.weight"):
            data = _permute(data, kv_heads)
        array = data.numpy()
        qtype = _tensor_type(gguf_name, array, wanted)
        writer.add_tensor(gguf_name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"tensor_types": counts, "pre_tokenizer": pre, "architecture": arch_name.lower()}
