"""One error type for the analysis CLIs: printed as one line, exit status 2."""


class AnalysisError(Exception):
    """A user-facing problem with an input file or argument."""
