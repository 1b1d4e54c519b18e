"""Model lab: a small Transformer, its tokenizers and data, a trainer, checkpoints and the run registry."""
