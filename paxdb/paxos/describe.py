"""Stable one-line renderings of messages, records and effects.

Transcripts, logs and the simulator's trace all use these, so a rendering must never
depend on memory addresses, hash order or anything but the object's content.
"""

from __future__ import annotations

import zlib

from paxdb.ids import Ballot
from paxdb.paxos.effects import (
    AcceptorRecord,
    ChosenRecord,
    Completion,
    Effects,
    Envelope,
    LogBaseRecord,
    Record,
)
from paxdb.paxos.messages import (
    Accept,
    Accepted,
    CatchupReply,
    CatchupRequest,
    Chosen,
    Message,
    Prepare,
    Promise,
    Reject,
)
from paxdb.paxos.values import Value

_PAYLOAD_SHOWN_MAX = 24


def value(v: Value | None) -> str:
    if v is None:
        return "-"
    payload = v.payload
    if len(payload) <= _PAYLOAD_SHOWN_MAX and payload.isascii() and payload.decode().isprintable():
        text = payload.decode("ascii")
    else:
        text = f"{len(payload)}B#{zlib.crc32(payload):08x}"
    return f"{v.kind.name}({text})"


def ballot(b: Ballot | None) -> str:
    return "-" if b is None else str(b)


def message(m: Message) -> str:
    if isinstance(m, Prepare):
        return f"Prepare b={m.ballot} i={m.instance}"
    if isinstance(m, Promise):
        return (
            f"Promise b={m.ballot} i={m.instance} "
            f"acc={ballot(m.accepted_ballot)}:{value(m.accepted_value)}"
        )
    if isinstance(m, Accept):
        return (
            f"Accept b={m.ballot} i={m.instance} v={value(m.value)} "
            f"prev={m.chain_previous:08x}/{ballot(m.previous_ballot)}"
        )
    if isinstance(m, Accepted):
        return f"Accepted b={m.ballot} i={m.instance}"
    if isinstance(m, Reject):
        return f"Reject b={m.ballot} i={m.instance} promised={m.promised}"
    if isinstance(m, Chosen):
        return f"Chosen b={m.ballot} i={m.instance} chain={m.chain:08x}"
    if isinstance(m, CatchupRequest):
        nonce = f" nonce={m.nonce}" if m.nonce else ""
        return f"CatchupRequest i={m.instance}{nonce}"
    assert isinstance(m, CatchupReply)
    span = f"{m.entries[0].instance}..{m.entries[-1].instance}" if m.entries else "none"
    fence = f" fenced nonce={m.nonce}" if m.fenced else f" nonce={m.nonce}" if m.nonce else ""
    return (
        f"CatchupReply min={m.instance_min} next={m.instance_next} entries={span} "
        f"vote={m.vote_instance} promised={m.promised}{fence}"
    )


def envelope(e: Envelope) -> str:
    return f"{e.source}->{e.target} {e.group} {message(e.message)}"


def record(r: Record) -> str:
    if isinstance(r, AcceptorRecord):
        return (
            f"AcceptorRecord promised={r.promised} i={r.instance} "
            f"acc={ballot(r.accepted_ballot)}:{value(r.accepted_value)}"
        )
    if isinstance(r, ChosenRecord):
        e = r.entry
        return f"ChosenRecord i={e.instance} v={value(e.value)} chain={e.chain:08x}"
    assert isinstance(r, LogBaseRecord)
    return f"LogBaseRecord i={r.instance} chain={r.chain:08x}"


def completion(c: Completion) -> str:
    where = f" i={c.instance}.{c.index}" if c.instance >= 0 else ""
    hint = f" hint={c.master_hint}" if c.master_hint is not None else ""
    return f"Completion {c.token!r} {c.outcome.value}{where}{hint}"


def effects(e: Effects) -> list[str]:
    """One line per item, in the order the runtime carries them out."""
    lines = [f"persist {record(r)}" for r in e.persist]
    if e.persist:
        lines.append(f"sync {e.must_sync}")
    lines += [f"send {envelope(s)}" for s in e.send]
    lines += [f"apply i={a.instance} {value(a.value)} chain={a.chain:08x}" for a in e.apply]
    lines += [completion(c) for c in e.completions]
    if e.status is not None:
        s = e.status
        learners = f" learners={list(s.learners)}" if s.learners else ""
        lines.append(f"status {s.role.value} master={s.master} members={list(s.members)}{learners}")
    if e.need_checkpoint is not None:
        lines.append(f"need-checkpoint from={e.need_checkpoint}")
    return lines
