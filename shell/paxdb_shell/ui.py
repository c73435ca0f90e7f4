"""The interactive front end: prompt_toolkit, used only when stdin is a terminal.

Enter runs the buffer when it holds a complete statement (or a dot-command, or
nothing); otherwise it starts a new line under a `   ...> ` continuation prompt, so one
history entry is one whole statement. Ctrl-C throws away the current input, Ctrl-D on
an empty line leaves. Highlighting uses pygments' SqlLexer when pygments is installed
(it is a dependency of prompt_toolkit's usual extras, not a hard one).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.lexers import Lexer

from .completion import SqlCompleter
from .core import CONTINUATION_PROMPT
from .sqltext import is_input_complete

if TYPE_CHECKING:
    from .shell import Shell

__all__ = ["HISTORY_ENV", "default_history_path", "interact"]

HISTORY_ENV = "PAXDB_HISTORY"  # overrides the history file; empty: no history file
HISTORY_FILE = "~/.paxdb_history"


def default_history_path() -> str | None:
    """`$PAXDB_HISTORY` if set (empty string: keep no history), else ~/.paxdb_history."""
    value = os.environ.get(HISTORY_ENV)
    if value is not None:
        return value or None
    return os.path.expanduser(HISTORY_FILE)


def _lexer() -> Lexer | None:
    try:
        from prompt_toolkit.lexers import PygmentsLexer
        from pygments.lexers.sql import SqlLexer  # type: ignore[import-untyped]
    except ImportError:
        return None
    return PygmentsLexer(SqlLexer)


def _key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if buffer.complete_state is not None and buffer.complete_state.current_completion:
            buffer.apply_completion(buffer.complete_state.current_completion)
        elif is_input_complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    return bindings


def _history(path: str | None) -> History:
    if path is None:
        return InMemoryHistory()
    try:
        return FileHistory(path)
    except OSError:
        return InMemoryHistory()


def _continuation(width: int, line_number: int, wrap_count: int) -> str:
    return CONTINUATION_PROMPT


def interact(shell: Shell, history_path: str | None) -> None:
    """Read and run entries until Ctrl-D; `.quit` ends it by raising ShellExit."""
    prompt: PromptSession[str] = PromptSession(
        history=_history(history_path),
        lexer=_lexer(),
        completer=SqlCompleter(shell.session.schema_map, shell.command_names()),
        complete_while_typing=True,
        multiline=True,
        key_bindings=_key_bindings(),
        prompt_continuation=_continuation,
    )
    while True:
        try:
            text = prompt.prompt(f"{shell.session.database}> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            return
        try:
            shell.run_text(text)
        except KeyboardInterrupt:
            shell.stderr.write("Interrupted.\n")
