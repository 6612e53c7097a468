"""`seektune plan`: how much memory a training config needs, from the model's config alone, and a
configuration that fits the hardware when this one does not."""
