"""Data readers shared by the subprojects (no mmdet needed)."""
