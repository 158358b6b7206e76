"""Analysis suite: classifier weight norms vs frequency vs AP (the paper's Figure 1)."""
