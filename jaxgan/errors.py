"""The one exception type for user mistakes: the entry points print its message, no traceback."""


class UserError(Exception):
    """A problem the user can fix (bad path, bad config value, incompatible resume, ...)."""
