"""Causal-LM cross-entropy on the supervised tokens (with term weights and label smoothing).

Cross-entropy is computed only where there is a target: the decoder's hidden states at supervised positions go
through the output head, instead of projecting every position onto the vocabulary and masking afterwards. On
chat data most positions are prompt, so this skips most of the head's FLOPs and its (batch x seq x vocab)
logits memory. Models whose logits are post-processed (soft-capping) use the plain forward. With `chunked_loss`
the head and the cross-entropy then run in chunks of those positions (`chunked_ce.py`), so not even the
(supervised tokens x vocab) logits are held at once.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from seektune.data.render import IGNORE
from seektune.models.unwrap import unwrap_peft
from seektune.models.vision import rope_positions, uses_rope_3d
from seektune.train.objectives.base import Objective
from seektune.train.objectives.chunked_ce import chunked_head_loss, supports_chunked_head


def supports_selective_head(model: nn.Module) -> bool:
    base = unwrap_peft(model)
    if getattr(base.config, "final_logit_softcapping", None):
        return False
    return hasattr(base, "get_decoder") and base.get_output_embeddings() is not None


def answer_logits(model: nn.Module, input_ids, position_ids, attention_mask, supervised, selective: bool,
                  image_inputs: dict | None = None):
    """Logits at the supervised positions only: with `selective`, the decoder's hidden states there go through
    the output head (no batch x seq x vocab tensor); otherwise the model's own forward, then the selection.
    `image_inputs` (pixel_values...) go to a vision-language model, whose `.model` puts the image features in
    place of the image tokens before the language model runs."""
    if selective:
        hidden = answer_hidden(model, input_ids, position_ids, attention_mask, supervised, image_inputs)
        return unwrap_peft(model).get_output_embeddings()(hidden)
    image_inputs = image_inputs or {}
    if uses_rope_3d(model):   # Qwen2-VL: (time, height, width) positions per sample, text-only rows too
        position_ids = rope_positions(model, input_ids, position_ids, image_inputs.get("image_grid_thw"))
    return model(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                 use_cache=False, **image_inputs).logits[supervised]


def answer_hidden(model: nn.Module, input_ids, position_ids, attention_mask, supervised,
                  image_inputs: dict | None = None):
    """The decoder's last hidden states at the supervised positions, (tokens, width): what the head projects."""
    image_inputs = image_inputs or {}
    if uses_rope_3d(model):
        position_ids = rope_positions(model, input_ids, position_ids, image_inputs.get("image_grid_thw"))
    base = unwrap_peft(model)
    body = base.model if image_inputs else base.get_decoder()
    hidden = body(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                  use_cache=False, **image_inputs).last_hidden_state
    return hidden[supervised]


def _virtual_tokens(model: nn.Module) -> bool:
    """peft prompt/prefix/p-tuning: the model must run its own forward, which prepends the virtual tokens."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


class CausalLMObjective(Objective):
    """forward(batch) -> (sum of token losses, number of supervised tokens).

    use_cache=False is load-bearing: transformers builds the block-diagonal mask for packed rows only when no
    KV cache exists, and models default to use_cache=True, which silently lets packed samples attend to each
    other (tests/unit/test_batching.py catches this).

    Per-token `weights` (term-weighted loss) multiply each token's loss; the sum is still divided by the number
    of supervised tokens, so weighted terms count more than other tokens instead of being renormalised away.
    Prompt-learning models prepend virtual tokens: for prompt and P-tuning their logits come first and are
    cut off here; prefix tuning adds them as past keys and values only.
    """

    name = "causal_lm"

    def __init__(self, model: nn.Module, selective_head: bool = True, label_smoothing: float = 0.0,
                 chunked_loss: bool = False):
        super().__init__(model)
        self.virtual_tokens = _virtual_tokens(model)
        self.selective_head = selective_head and not self.virtual_tokens and supports_selective_head(model)
        self.label_smoothing = label_smoothing
        self.chunked_loss = (chunked_loss and self.selective_head
                             and supports_chunked_head(unwrap_peft(model).get_output_embeddings()))

    def describe(self) -> str:
        return (f"{self.name} (selective head: {self.selective_head}, chunked loss: {self.chunked_loss}, "
                f"label smoothing: {self.label_smoothing})")

    def forward(self, input_ids, targets, position_ids, attention_mask=None, weights=None, **image_inputs):
        supervised = targets != IGNORE
        if self.virtual_tokens:  # padded rows only (config check); positions start at 0 after the prompt
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            logits = out.logits[:, -input_ids.shape[1]:][supervised]
        elif self.chunked_loss:
            hidden = answer_hidden(self.model, input_ids, position_ids, attention_mask, supervised, image_inputs)
            head = unwrap_peft(self.model).get_output_embeddings()
            token_weights = weights[supervised] if weights is not None else None
            return (chunked_head_loss(hidden, head, targets[supervised], token_weights, self.label_smoothing),
                    supervised.sum())
        else:
            logits = answer_logits(self.model, input_ids, position_ids, attention_mask, supervised,
                                   self.selective_head, image_inputs)
        losses = F.cross_entropy(logits.float(), targets[supervised], reduction="none",
                                 label_smoothing=self.label_smoothing)
        if weights is not None:
            losses = losses * weights[supervised]
        return losses.sum(), supervised.sum()


class CaptionObjective(CausalLMObjective):
    """LLaVA's projector pre-training: cross-entropy on captions (or any answers about images) with the
    language model frozen by the config, so only the projector (and a tower set to train) learn."""

    name = "caption"

    def describe(self) -> str:
        return (f"caption (cross-entropy on the answers, language model frozen; selective head: "
                f"{self.selective_head}, chunked loss: {self.chunked_loss})")
