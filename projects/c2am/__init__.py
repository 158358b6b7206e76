"""C2AM for MMDetection 3.x.

``projects.c2am.c2am`` is the pure-PyTorch loss core; ``projects.c2am.mmdet_plugin`` registers
the mmdet modules (import it through ``custom_imports`` in a config).
"""
