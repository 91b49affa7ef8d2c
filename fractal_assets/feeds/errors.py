"""The error every feed raises for a source that is not in the format it was read as."""


class FeedFormatError(ValueError):
    """A source that is not in the format it was read as."""
