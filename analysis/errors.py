"""The analysis CLIs' error type: a :class:`~projects.c2am.cli.UserError` (one line, exit 2)."""
from projects.c2am.cli import UserError


class AnalysisError(UserError):
    """A user-facing problem with an input file or argument."""
