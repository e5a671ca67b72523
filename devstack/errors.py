"""The one error the local stack raises: its message says which part failed and what to do."""


class StackError(RuntimeError):
    """A part of the stack could not be started or did not become healthy; the message says which."""
