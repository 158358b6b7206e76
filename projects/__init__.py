"""MMDetection-style ``projects/`` namespace of this repository."""
