"""The client protocol: what drivers and nodes say to each other on the client port.

Frames are `paxdb.wire` frames (4-byte length + msgpack map). A client sends requests
and reads replies on one TCP connection; replies carry the request's `id`, and a
connection may have several requests in flight (replies can come back in any order).

Requests
    exec    run statements. `w`: True (a write: replicated, atomic, exactly-once by
            (client id, seq)), False (a read) or None (the node decides: reads only if
            every statement is a read). `c`: consistency for reads. `mi`: the lowest
            applied instance a read must see (read-your-writes; 0 for none).
            `fw`: set by a node that relays the request to the master (optional).
    status  the node's view of the cluster, for `paxdb status` and the shell.
    backup  a chunk of a consistent copy of a database (`paxdb backup`).
    members a membership change (`paxdb members`, `--join`): `op` add|promote|remove,
            `node` the node id, `addr` its peer address (add only). Answered by the
            master of `main` with a `res` whose one result has one row
            (instance, outcome text), or an error naming the master to ask.

Replies
    res     `r`: one result per statement; `e`: the error (then `r` is empty); `i`: the
            instance the write was applied at, or the replica's applied instance for a
            read; `m`: the client address of the master when the node knows it (a
            driver retries there on NotMaster).
    stat    `s`: a status map (see paxdb/node/status.py).
    chunk   `data` of the copy `tok` from `off`, its `size`, instance `i` and chain `c`.

Every decode treats its input as untrusted: types, ranges and sizes are checked, and
anything wrong raises `RemoteProtocolError`. The node answers a malformed request with
an error reply when it can read the id, and otherwise closes the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from paxdb.errors import RemoteProtocolError
from paxdb.sql.requests import (
    REQUEST_STATEMENTS_MAX,
    ErrorInfo,
    Param,
    Params,
    Statement,
    StatementResult,
)
from paxdb.wire import encode_frame

CLIENT_ID_CHARS_MAX = 128
SQL_CHARS_MAX = 1_000_000  # One statement's text.
PARAMS_MAX = 32_766  # SQLite's default SQLITE_MAX_VARIABLE_NUMBER.
REQUEST_ID_MAX = 2**63 - 1
DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


class Consistency(StrEnum):
    LOCAL = "local"  # This replica, possibly behind the master.
    MASTER = "master"  # Served by the master while its lease holds.
    LINEARIZABLE = "linearizable"  # The master confirms with a quorum first.


@dataclass(frozen=True, slots=True)
class ExecuteRequest:
    request_id: int
    database: str
    statements: tuple[Statement, ...]
    write: bool | None = None
    consistency: Consistency = Consistency.MASTER
    client_id: str = ""
    seq: int = 0
    min_instance: int = 0
    forwarded: bool = False  # Set by a node that relays to the master; never relayed again.


@dataclass(frozen=True, slots=True)
class ExecuteReply:
    request_id: int
    results: tuple[StatementResult, ...] = ()
    error: ErrorInfo | None = None
    instance: int = -1
    master: str | None = None


@dataclass(frozen=True, slots=True)
class StatusRequest:
    request_id: int


@dataclass(frozen=True, slots=True)
class StatusReply:
    request_id: int
    status: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BackupRequest:
    """A chunk of a consistent copy of `database`. An empty `token` asks the node to take
    a new copy (with the SQLite backup API); later chunks name the copy's token."""

    request_id: int
    database: str
    token: str = ""
    offset: int = 0


@dataclass(frozen=True, slots=True)
class BackupReply:
    """`data` is the copy from `offset`; `size` its total length; `instance` and `chain`
    the applied instance and CRC chain the copy holds."""

    request_id: int
    token: str
    size: int
    offset: int
    data: bytes
    instance: int
    chain: int


@dataclass(frozen=True, slots=True)
class CheckpointRequest:
    """A chunk of one of the node's checkpoints of `database` (node-to-node catch-up).
    An empty `name` asks for the newest checkpoint."""

    request_id: int
    database: str
    name: str = ""
    offset: int = 0


@dataclass(frozen=True, slots=True)
class CheckpointReply:
    """`data` is the checkpoint file `name` from `offset`, `crc` its CRC32; `meta` is the
    checkpoint's metadata (checkpoints.py), the same in every chunk."""

    request_id: int
    name: str
    offset: int
    data: bytes
    crc: int
    meta: dict[str, Any]


MEMBERS_OPERATIONS = ("add", "promote", "remove")
ADDRESS_CHARS_MAX = 300


@dataclass(frozen=True, slots=True)
class MembersRequest:
    """Change the cluster's membership; see paxdb/node/membership.py."""

    request_id: int
    operation: str
    node_id: int
    address: str = ""


ClientMessage = (
    ExecuteRequest
    | ExecuteReply
    | StatusRequest
    | StatusReply
    | BackupRequest
    | BackupReply
    | CheckpointRequest
    | CheckpointReply
    | MembersRequest
)
BACKUP_CHUNK_BYTES = 1024 * 1024  # Data per BackupReply.
TOKEN_CHARS_MAX = 64


def check_database_name(name: object) -> str:
    if not isinstance(name, str) or not DATABASE_NAME.match(name):
        raise RemoteProtocolError(
            f"database name {name!r} is not valid: use letters, digits and _, "
            "starting with a letter or _, at most 64 characters"
        )
    return name


# Encoding.


def encode(message: ClientMessage) -> bytes:
    """One frame for `message`."""
    if isinstance(message, ExecuteRequest):
        body: dict[str, Any] = {
            "t": "exec",
            "id": message.request_id,
            "db": message.database,
            "st": [[s.sql, _encode_params(s.params)] for s in message.statements],
            "w": message.write,
            "c": message.consistency.value,
            "cid": message.client_id,
            "seq": message.seq,
            "mi": message.min_instance,
        }
        if message.forwarded:
            body["fw"] = True
    elif isinstance(message, ExecuteReply):
        body = {
            "t": "res",
            "id": message.request_id,
            "r": [
                [r.rowcount, r.lastrowid, list(r.columns), [list(row) for row in r.rows]]
                for r in message.results
            ],
            "e": None
            if message.error is None
            else [message.error.class_name, message.error.message, message.error.code],
            "i": message.instance,
            "m": message.master,
        }
    elif isinstance(message, StatusRequest):
        body = {"t": "status", "id": message.request_id}
    elif isinstance(message, StatusReply):
        body = {"t": "stat", "id": message.request_id, "s": message.status}
    elif isinstance(message, BackupRequest):
        body = {
            "t": "backup",
            "id": message.request_id,
            "db": message.database,
            "tok": message.token,
            "off": message.offset,
        }
    elif isinstance(message, CheckpointRequest):
        body = {
            "t": "ckpt",
            "id": message.request_id,
            "db": message.database,
            "name": message.name,
            "off": message.offset,
        }
    elif isinstance(message, MembersRequest):
        body = {
            "t": "members",
            "id": message.request_id,
            "op": message.operation,
            "node": message.node_id,
            "addr": message.address,
        }
    elif isinstance(message, CheckpointReply):
        body = {
            "t": "ckptd",
            "id": message.request_id,
            "name": message.name,
            "off": message.offset,
            "data": message.data,
            "crc": message.crc,
            "meta": message.meta,
        }
    else:
        body = {
            "t": "chunk",
            "id": message.request_id,
            "tok": message.token,
            "size": message.size,
            "off": message.offset,
            "data": message.data,
            "i": message.instance,
            "c": message.chain,
        }
    return encode_frame(body)


def _encode_params(params: Params) -> Any:
    if params is None:
        return None
    if isinstance(params, dict):
        return dict(params)
    return list(params)


# Decoding (untrusted).


def decode(mapping: dict[str, Any]) -> ClientMessage:
    """A decoded frame (from `FrameDecoder.feed`) as a client message."""
    try:
        tag = mapping["t"]
        request_id = _int(mapping["id"], REQUEST_ID_MAX, "id")
        if tag == "exec":
            return _decode_execute(mapping, request_id)
        if tag == "res":
            return _decode_reply(mapping, request_id)
        if tag == "status":
            return StatusRequest(request_id)
        if tag == "backup":
            return BackupRequest(
                request_id,
                check_database_name(mapping["db"]),
                _token(mapping["tok"]),
                _int(mapping["off"], 2**63 - 1, "off"),
            )
        if tag == "chunk":
            data = mapping["data"]
            if not isinstance(data, bytes) or len(data) > BACKUP_CHUNK_BYTES:
                raise RemoteProtocolError("a backup chunk carries at most 1 MiB of bytes")
            return BackupReply(
                request_id,
                _token(mapping["tok"]),
                _int(mapping["size"], 2**63 - 1, "size"),
                _int(mapping["off"], 2**63 - 1, "off"),
                data,
                _int(mapping["i"] + 1, 2**63 - 1, "i") - 1,
                _int(mapping["c"], 2**32 - 1, "c"),
            )
        if tag == "ckpt":
            return CheckpointRequest(
                request_id,
                check_database_name(mapping["db"]),
                _checkpoint_name(mapping["name"]),
                _int(mapping["off"], 2**63 - 1, "off"),
            )
        if tag == "ckptd":
            data, meta = mapping["data"], mapping["meta"]
            if not isinstance(data, bytes) or len(data) > BACKUP_CHUNK_BYTES:
                raise RemoteProtocolError("a checkpoint chunk carries at most 1 MiB of bytes")
            if not isinstance(meta, dict):
                raise RemoteProtocolError("checkpoint metadata must be a map")
            return CheckpointReply(
                request_id,
                _checkpoint_name(mapping["name"]),
                _int(mapping["off"], 2**63 - 1, "off"),
                data,
                _int(mapping["crc"], 2**32 - 1, "crc"),
                meta,
            )
        if tag == "members":
            operation, address = mapping["op"], mapping["addr"]
            if operation not in MEMBERS_OPERATIONS:
                raise RemoteProtocolError(
                    f"membership operation must be one of {MEMBERS_OPERATIONS}"
                )
            if not isinstance(address, str) or len(address) > ADDRESS_CHARS_MAX:
                raise RemoteProtocolError("a peer address is a short string HOST:PORT")
            return MembersRequest(
                request_id, operation, _int(mapping["node"], 2**31 - 1, "node"), address
            )
        if tag == "stat":
            status = mapping["s"]
            if not isinstance(status, dict):
                raise RemoteProtocolError("status must be a map")
            return StatusReply(request_id, status)
    except KeyError as missing:
        raise RemoteProtocolError(f"client frame lacks field {missing}") from None
    raise RemoteProtocolError(f"unknown client frame type {tag!r}")


def _checkpoint_name(value: object) -> str:
    if not isinstance(value, str) or not (value == "" or (len(value) == 20 and value.isdigit())):
        raise RemoteProtocolError("a checkpoint name is 20 digits")
    return value


def request_id_of(mapping: dict[str, Any]) -> int | None:
    """The request id of a frame that failed to decode, if it has a usable one."""
    value = mapping.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= REQUEST_ID_MAX:
        return value
    return None


def _decode_execute(f: dict[str, Any], request_id: int) -> ExecuteRequest:
    raw = f["st"]
    if not isinstance(raw, list) or not 0 < len(raw) <= REQUEST_STATEMENTS_MAX:
        raise RemoteProtocolError(f"a request needs 1 to {REQUEST_STATEMENTS_MAX} statements")
    statements = tuple(_statement(item) for item in raw)
    write = f["w"]
    if write is not None and not isinstance(write, bool):
        raise RemoteProtocolError("w must be true, false or nil")
    try:
        consistency = Consistency(f["c"])
    except ValueError:
        raise RemoteProtocolError(
            f"consistency {f['c']!r} is not one of local, master, linearizable"
        ) from None
    client_id = f["cid"]
    if not isinstance(client_id, str) or len(client_id) > CLIENT_ID_CHARS_MAX:
        raise RemoteProtocolError("client id must be a string of at most 128 characters")
    return ExecuteRequest(
        request_id,
        check_database_name(f["db"]),
        statements,
        write,
        consistency,
        client_id,
        _int(f["seq"], 2**63 - 1, "seq"),
        _int(f["mi"], 2**63 - 1, "mi"),
        f.get("fw") is True,
    )


def _statement(item: Any) -> Statement:
    if not isinstance(item, list) or len(item) != 2:
        raise RemoteProtocolError("a statement is [sql, params]")
    sql, params = item
    if not isinstance(sql, str) or not sql.strip() or len(sql) > SQL_CHARS_MAX:
        raise RemoteProtocolError("statement text must be a non-empty string")
    return Statement(sql, _params(params))


def _params(raw: Any) -> Params:
    if raw is None:
        return None
    if isinstance(raw, list):
        if len(raw) > PARAMS_MAX:
            raise RemoteProtocolError("too many parameters")
        return tuple(_param(value) for value in raw)
    if isinstance(raw, dict):
        if len(raw) > PARAMS_MAX or not all(isinstance(k, str) for k in raw):
            raise RemoteProtocolError("named parameters need string names")
        return {key: _param(value) for key, value in raw.items()}
    raise RemoteProtocolError("parameters must be a list, a map or nil")


def _param(value: Any) -> Param:
    if value is None or isinstance(value, int | float | str | bytes):
        if isinstance(value, bool):
            return int(value)
        return value
    raise RemoteProtocolError(f"parameter of type {type(value).__name__} is not supported")


def _decode_reply(f: dict[str, Any], request_id: int) -> ExecuteReply:
    try:
        return _decode_reply_fields(f, request_id)
    except (TypeError, ValueError) as error:
        raise RemoteProtocolError(f"malformed reply: {error}") from None


def _decode_reply_fields(f: dict[str, Any], request_id: int) -> ExecuteReply:
    results = []
    for raw in f["r"]:
        rowcount, lastrowid, columns, rows = raw
        results.append(
            StatementResult(
                int(rowcount),
                None if lastrowid is None else int(lastrowid),
                tuple(str(c) for c in columns),
                tuple(tuple(row) for row in rows),
            )
        )
    error = None
    if f["e"] is not None:
        class_name, message, code = f["e"]
        error = ErrorInfo(str(class_name), str(message), int(code))
    master = f["m"]
    if master is not None and not isinstance(master, str):
        raise RemoteProtocolError("master address must be a string")
    return ExecuteReply(request_id, tuple(results), error, int(f["i"]), master)


def _token(value: Any) -> str:
    if not isinstance(value, str) or len(value) > TOKEN_CHARS_MAX or not value.isalnum() and value:
        raise RemoteProtocolError("a backup token is a short alphanumeric string")
    return value


def _int(value: Any, maximum: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise RemoteProtocolError(f"{name} must be an integer from 0 to {maximum}")
    return value
