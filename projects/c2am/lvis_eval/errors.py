"""The error the evaluation raises for bad inputs: a one-line message for the user."""
from __future__ import annotations

from projects.c2am.cli import UserError


class EvalInputError(UserError):
    """Ground truth or detections that can not be evaluated (missing keys, unknown ids, ...)."""
