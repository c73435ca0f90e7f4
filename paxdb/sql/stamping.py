"""Stamped time and randomness: how 'now' and random() agree on every replica.

The master stamps one time (ms since the Unix epoch) and one 64-bit seed into each
chosen value. While a replica applies that value:

- Time. The apply connection opens its file through `StampedTimeVFS`, a VFS that
  inherits everything from the default VFS and overrides only `xCurrentTimeInt64` and
  `xCurrentTime`. SQLite's date/time functions ('now', `date()` without arguments),
  `CURRENT_TIMESTAMP`/`CURRENT_DATE`/`CURRENT_TIME`, and therefore column defaults such
  as `DEFAULT CURRENT_TIMESTAMP`, all ask the connection's VFS for the time, so they all
  read the stamp. SQLite also holds 'now' fixed within one statement. The stamp lives in
  a thread-local, so several state machines in one process (the simulator) can apply on
  different threads; outside an apply the VFS answers with the real clock.
- Randomness. `random()` and `randomblob(n)` are overridden on the apply connection
  (APSW `create_scalar_function` replaces built-ins) by `StampedRandom`, a PRNG seeded
  from (seed, instance, request index, statement index). A statement's values therefore depend only
  on the chosen value and the statement's place in it, not on what ran before on this
  connection (replay after a restart gives the same values).

Known gap: SQLite uses its own PRNG internally when the largest rowid is already
2**63-1 (it then picks free rowids at random); that one case is not stamped.
"""

from __future__ import annotations

import contextlib
import random
import struct
import threading
from collections.abc import Iterator
from typing import Any

import apsw

STAMPED_VFS_NAME = "paxdb-stamped"
_JULIAN_EPOCH_MS = 210_866_760_000_000  # The Unix epoch as a Julian day number, in ms.
_MS_PER_DAY = 86_400_000
_U64_MASK = 2**64 - 1


class StampedTimeVFS(apsw.VFS):
    """The default VFS, except that the clock reads the stamp of the value being applied."""

    def __init__(self) -> None:
        self._local = threading.local()
        super().__init__(STAMPED_VFS_NAME, "")

    @property
    def stamp_ms(self) -> int | None:
        value: int | None = getattr(self._local, "stamp_ms", None)
        return value

    @contextlib.contextmanager
    def stamped(self, time_ms: int) -> Iterator[None]:
        """Within this block, on this thread, 'now' is `time_ms`."""
        assert time_ms >= 0
        previous = self.stamp_ms
        self._local.stamp_ms = time_ms
        try:
            yield
        finally:
            self._local.stamp_ms = previous

    def xCurrentTimeInt64(self) -> int:  # noqa: N802 - SQLite's name.
        stamp = self.stamp_ms
        if stamp is None:
            return int(super().xCurrentTimeInt64())
        return _JULIAN_EPOCH_MS + stamp

    def xCurrentTime(self) -> float:  # noqa: N802 - SQLite's name.
        return self.xCurrentTimeInt64() / _MS_PER_DAY


_vfs_lock = threading.Lock()
_vfs: StampedTimeVFS | None = None


def stamped_vfs() -> StampedTimeVFS:
    """The process-wide stamped VFS, registered with SQLite on first use."""
    global _vfs
    with _vfs_lock:
        if _vfs is None:
            _vfs = StampedTimeVFS()
        return _vfs


class StampedRandom:
    """random()/randomblob() answered from (seed, instance, request, statement index)."""

    __slots__ = ("_key", "_generator", "_length_max")

    def __init__(self, length_max: int) -> None:
        self._key = b""
        self._generator: random.Random | None = None
        self._length_max = length_max

    def select(self, seed: int, instance: int, request_index: int, statement_index: int) -> None:
        """Start the stream of one statement. Cheap: the PRNG is built on first use.

        The instance is part of the key so that two values stamped with the same seed
        (a master that stamps carelessly, or a test) still draw different numbers.
        """
        self._key = struct.pack(">QQII", seed & _U64_MASK, instance, request_index, statement_index)
        self._generator = None

    def _stream(self) -> random.Random:
        if self._generator is None:
            assert self._key, "random() outside an apply"
            self._generator = random.Random(self._key)  # Seeding from bytes is stable.
        return self._generator

    def random(self) -> int:
        return self._stream().getrandbits(64) - 2**63

    def randomblob(self, length: object) -> bytes:
        count = _as_int(length)
        if count > self._length_max:
            raise apsw.TooBigError("string or blob too big")
        return self._stream().randbytes(max(count, 1))  # SQLite: N < 1 gives one byte.

    def install(self, connection: apsw.Connection) -> None:
        """Replace SQLite's random() and randomblob() on `connection`."""
        # INNOCUOUS: no side effects, so they stay usable in DEFAULT, views and triggers
        # under trusted_schema=OFF, like the built-ins they replace.
        flags = apsw.SQLITE_INNOCUOUS
        random_function: Any = self.random  # APSW's stub wants a variadic callable.
        randomblob_function: Any = self.randomblob
        connection.create_scalar_function("random", random_function, 0, flags=flags)
        connection.create_scalar_function("randomblob", randomblob_function, 1, flags=flags)


def _as_int(value: object) -> int:
    """SQLite's integer reading of a value (sqlite3_value_int64), for randomblob's N."""
    try:
        if isinstance(value, (int, float)):
            return int(value)
        if isinstance(value, str):
            return int(float(value.strip()))
    except (ValueError, OverflowError):
        return 0
    return 0
