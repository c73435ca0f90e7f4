"""The shell's own exceptions; database errors keep their driver's classes."""

from __future__ import annotations

__all__ = ["ShellError", "ShellExit"]


class ShellError(Exception):
    """A usage error of the shell itself (bad dot-command, bad argument, bad file).

    Reported as one line, `Error: <message>`, like a database error but without a
    class name, since the class says nothing to the user.
    """


class ShellExit(Exception):
    """Raised by `.quit`/`.exit` to leave the shell from any depth (even inside `.read`)."""
