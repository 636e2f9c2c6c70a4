"""The one error ingest raises for unusable input."""


class IngestError(Exception):
    """Input that cannot be loaded. The message is one line naming the file and the problem."""
