"""seektune: fine-tune DeepSeek-family and other Hugging Face causal LMs into domain experts."""

__version__ = "0.1.0"
