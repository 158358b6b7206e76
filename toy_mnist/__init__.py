"""Imbalanced-MNIST toy of the paper's Sec. 3.3 / Figure 3 (uses the shared loss core)."""
