"""The one exception type for a user's mistake.

Raised where the mistake is found, with one sentence that says what to do. The command
line prints it and exits with status 2; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in what the user asked for: bad name, missing data, input too small..."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: a notebook user sees the one sentence.
        return [f"UserError: {self}"]
