"""paxdb_shell: the interactive SQL shell for paxdb (`paxdb-shell`, `paxdb shell`).

Public entry points:
- `main`: the click command (`paxdb-shell [URL] [-c SQL] [-f FILE]`).
- `run(url, command, file)`: the same, callable, returning the exit status.
- `Shell(session, stdin, stdout, stderr, interactive=..., width=...)`: the shell itself.
- `Session(conn)`: runs SQL on any connection shaped like `backend.ShellConnection`.
- `backend.connect(url)`: the one place that knows about the paxdb driver.
"""

from __future__ import annotations

from .main import main, run
from .session import Result, Session
from .shell import Shell

__all__ = ["Result", "Session", "Shell", "__version__", "main", "run"]

__version__ = "0.1.0"
