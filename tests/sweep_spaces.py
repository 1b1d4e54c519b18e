"""Search spaces the sweep tests share: the page test (AppTest) and the browser test start the same tiny study."""

# 2 trials of 4 steps of a 32-wide model on 16-token rows: seconds, not minutes, on a 2-core CPU
TINY_SPACE = """[fixed]
max_steps = 4
eval_every = 2
eval_batches = 1
context = 16
batch_size = 4
d_model = 32
[params.lr]
low = 1e-4
high = 1e-2
log = true
[params.n_layers]
low = 1
high = 2
"""
