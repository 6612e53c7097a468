"""Pure text metrics (EM, F1, key-fact match, BLEU, ROUGE, citation accuracy): what evaluation scores answers
with and what training's reward functions (GRPO) score samples with, so both use one definition."""
