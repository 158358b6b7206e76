import os

# Deterministic, quiet CPU runs: one intra-op thread is faster than two on a busy 2-core box.
os.environ.setdefault('OMP_NUM_THREADS', '1')
