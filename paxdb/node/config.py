"""Node configuration: flags and config files, validated, and the data directory's identity.

Every mistake an operator can make here ends in `ConfigError` with one line that says
what is wrong and what to do; nothing is half-started.

The data directory (DESIGN.md, "Fixed: data directory"):
    DIR/cluster.json          cluster id, this node's id, bootstrap members, format version
    DIR/groups/NAME/db.sqlite the replica of database NAME
    DIR/log/                  the Paxos log of every group (paxdb.storage.file_log)

The cluster id is derived from the bootstrap member list (sorted `id=host:port` pairs)
and the lease timing (`tick_ms`, lease ticks), so nodes started independently with the
same `--peers` and `--tick-ms` agree on it without a coordinator; a data directory
created for another cluster is refused. The bootstrap list never changes after that:
members added later (`paxdb members`, `--join`) are in the log, not in the cluster id.
cluster.json keeps the bootstrap list, so a node restarts without `--peers`, and a
node that joined a running cluster (`--join URL`) learned it from that cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from paxdb import limits
from paxdb.errors import PaxdbError
from paxdb.node.checkpoints import CheckpointPolicy
from paxdb.paxos.options import Options

FORMAT_VERSION = 1
CLIENT_PORT_OFFSET = 1000  # Default client port: peer port + 1000 (DESIGN.md).
TICK_MS_MIN = 1
TICK_MS_MAX = 1000
SECRET_BYTES_MIN = 16
CONFIG_KEYS = {
    "id",
    "data",
    "listen",
    "client",
    "peers",
    "secret_file",
    "tick_ms",
    "checkpoint_every",
    "checkpoint_log_mb",
    "log_keep",
    "join",
    "learner",
}
_ADDRESS = re.compile(r"\A(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})\Z")

Address = tuple[str, int]


class ConfigError(PaxdbError):
    """A bad flag, file or data directory; the message is one line for the operator."""


def parse_address(text: str, what: str) -> Address:
    match = _ADDRESS.match(text.strip())
    if not match:
        raise ConfigError(f"{what} {text!r} is not HOST:PORT (for example 127.0.0.1:7001)")
    host, port = match.group(1).strip("[]"), int(match.group(2))
    if not 0 < port < 65536:
        raise ConfigError(f"{what} {text!r}: port must be 1-65535")
    return host, port


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_peers(text: str) -> dict[int, Address]:
    """`1=host:port,2=host:port,...` -> {1: (host, port), ...}."""
    peers: dict[int, Address] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        node_text, sep, address_text = part.partition("=")
        if not sep or not node_text.strip().isdigit():
            raise ConfigError(f"peer {part!r} is not ID=HOST:PORT (for example 2=10.0.0.2:7001)")
        node_id = int(node_text)
        if not 0 < node_id <= limits.NODE_ID_MAX:
            raise ConfigError(f"peer id {node_id} must be 1-{limits.NODE_ID_MAX}")
        if node_id in peers:
            raise ConfigError(f"peer id {node_id} appears twice in --peers")
        peers[node_id] = parse_address(address_text, f"peer {node_id}")
    if len(peers) > limits.MEMBERS_MAX:
        raise ConfigError(f"at most {limits.MEMBERS_MAX} members; --peers names {len(peers)}")
    return peers


@dataclass(frozen=True)
class NodeConfig:
    node_id: int
    data_dir: Path
    listen: Address
    client: Address
    # The cluster's bootstrap members (its first configuration; this node included unless
    # it joined later). The members in force now are in each database's log.
    peers: dict[int, Address]
    secret: bytes | None = None
    tick_ms: int = limits.TICK_MS
    options: Options = field(default_factory=Options)
    checkpoints: CheckpointPolicy = field(default_factory=CheckpointPolicy)
    join: str | None = None  # URL of a running cluster to join (--join).
    learner: bool = False  # Join as a non-voting learner and stay one (--learner).
    # Addresses of members added after the bootstrap, as a joining node learned them from
    # the cluster (until its databases' own membership says where everyone is).
    known: dict[int, Address] = field(default_factory=dict)

    @property
    def members(self) -> tuple[int, ...]:
        """The bootstrap members (every database's configuration at instance 0)."""
        return tuple(sorted(self.peers))

    @property
    def peers_spec(self) -> str:
        return ",".join(f"{n}={format_address(self.peers[n])}" for n in self.members)

    @property
    def cluster_id(self) -> str:
        """Derived from the members and the lease timing, which every node must share:
        the lease is counted in ticks, so nodes with another tick length or lease could
        believe in a master longer than it holds its lease. Such a node is refused at
        the handshake as belonging to another cluster."""
        spec = self.peers_spec + f";tick_ms={self.tick_ms};lease_ticks={self.options.lease_ticks}"
        return "paxdb-" + hashlib.sha256(spec.encode()).hexdigest()[:16]


def build_config(
    node_id: int | None,
    data: str | None,
    listen: str | None,
    peers: str | None,
    client: str | None = None,
    secret_file: str | None = None,
    tick_ms: int | None = None,
    config_file: str | None = None,
    checkpoint_every: int | None = None,
    log_keep: int | None = None,
    checkpoint_log_mb: int | None = None,
    election_jitter_ticks: int | None = None,
    join: str | None = None,
    learner: bool | None = None,
) -> NodeConfig:
    """Flags override the config file; the result is fully validated.

    The bootstrap members come from `--peers`, else from the data directory's
    cluster.json, else (with `--join URL` and an empty directory) from the cluster later:
    see `joined_config`."""
    values: dict[str, Any] = _read_config_file(config_file) if config_file else {}
    flags = {
        "id": node_id,
        "data": data,
        "listen": listen,
        "peers": peers,
        "client": client,
        "secret_file": secret_file,
        "tick_ms": tick_ms,
        "checkpoint_every": checkpoint_every,
        "checkpoint_log_mb": checkpoint_log_mb,
        "log_keep": log_keep,
        "join": join,
        "learner": learner,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    for required in ("id", "data", "listen"):
        if values.get(required) is None:
            raise ConfigError(f"--{required} is required (or `{required}` in --config)")
    this = int(values["id"])
    if not 0 < this <= limits.NODE_ID_MAX:
        raise ConfigError(f"--id {this} must be 1-{limits.NODE_ID_MAX}")
    listen_address = parse_address(str(values["listen"]), "--listen")
    data_dir = Path(str(values["data"])).expanduser()
    stored = read_identity(data_dir)
    join_url = str(values["join"]) if values.get("join") else None
    if values.get("learner") and join_url is None:
        raise ConfigError("--learner needs --join URL: a learner joins a running cluster")
    known: dict[int, Address] = {}
    if values.get("peers"):
        members = parse_peers(str(values["peers"]))
        members.setdefault(this, listen_address)
    elif stored is not None and "peers" in stored:
        members = parse_peers(str(stored["peers"]))
        if values.get("tick_ms") is None:
            values["tick_ms"] = stored.get("tick_ms")
        known = {
            int(node_id): parse_address(str(text), f"node {node_id}")
            for node_id, text in dict(stored.get("known") or {}).items()
        }
    elif join_url is not None:
        members = {}  # Learned from the cluster at start (joined_config).
    else:
        members = {this: listen_address}  # A one-node cluster.
    if members.get(this, listen_address) != listen_address:
        source = "--peers" if values.get("peers") else f"{data_dir}/cluster.json"
        raise ConfigError(
            f"{source} says node {this} is at {format_address(members[this])}, "
            f"but --listen is {format_address(listen_address)}"
        )
    client_text = values.get("client")
    client_address = (
        parse_address(str(client_text), "--client")
        if client_text
        else (listen_address[0], listen_address[1] + CLIENT_PORT_OFFSET)
    )
    if client_address == listen_address:
        raise ConfigError("--client and --listen must be different addresses")
    return NodeConfig(
        node_id=this,
        data_dir=data_dir,
        listen=listen_address,
        client=client_address,
        peers=members,
        secret=_read_secret(values.get("secret_file")),
        tick_ms=_tick_ms(values.get("tick_ms")),
        options=Options(
            election_jitter_ticks=election_jitter_ticks or limits.ELECTION_JITTER_TICKS
        ),
        checkpoints=CheckpointPolicy(
            every=_count(values, "checkpoint_every", CheckpointPolicy.every, 1),
            log_mb=_count(values, "checkpoint_log_mb", CheckpointPolicy.log_mb, 1),
            log_keep=_count(values, "log_keep", CheckpointPolicy.log_keep, 0),
        ),
        join=join_url,
        learner=bool(values.get("learner")),
        known=known,
    )


def joined_config(config: NodeConfig, status: dict[str, Any]) -> NodeConfig:
    """`config` completed with what a running cluster reported (`paxdb status --json`
    of the `--join` URL): its bootstrap members and tick, checked against its id."""
    try:
        cluster_id = str(status["cluster"])
        peers = parse_peers(str(status["bootstrap"]))
        tick_ms = _tick_ms(status["tick_ms"])
        known = {
            int(node_id): parse_address(str(peer["address"]), f"node {node_id}")
            for node_id, peer in dict(status["peers"]).items()
        }
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise ConfigError(
            f"--join {config.join}: the node's status is not usable ({error}); "
            "is it a paxdb node of this version?"
        ) from None
    if peers.get(config.node_id, config.listen) != config.listen:
        raise ConfigError(
            f"the cluster says node {config.node_id} is at "
            f"{format_address(peers[config.node_id])}, but --listen is "
            f"{format_address(config.listen)}"
        )
    if known.get(config.node_id, config.listen) != config.listen:
        raise ConfigError(
            f"the cluster already has a node {config.node_id} at "
            f"{format_address(known[config.node_id])}; choose another --id, or remove "
            f"that node first (paxdb members URL remove {config.node_id})"
        )
    joined = replace(config, peers=peers, tick_ms=tick_ms, known=known)
    if joined.cluster_id != cluster_id:
        raise ConfigError(
            f"--join {config.join}: the cluster's id {cluster_id} does not follow from its "
            f"members and timing ({joined.cluster_id}); the nodes run another paxdb version"
        )
    return joined


def _count(values: dict[str, Any], key: str, default: int, low: int) -> int:
    value = values.get(key)
    if value is None:
        return default
    try:
        count = int(str(value))
    except ValueError:
        raise ConfigError(f"{key} {value!r} is not a whole number of instances") from None
    if not low <= count <= 2**62:
        raise ConfigError(f"{key} must be at least {low}, not {count}")
    return count


def _tick_ms(value: object) -> int:
    if value is None:
        return limits.TICK_MS
    try:
        tick = int(str(value))
    except (TypeError, ValueError):
        raise ConfigError(f"tick_ms {value!r} is not a number of milliseconds") from None
    if not TICK_MS_MIN <= tick <= TICK_MS_MAX:
        raise ConfigError(f"tick_ms must be {TICK_MS_MIN}-{TICK_MS_MAX}, not {tick}")
    return tick


def _read_config_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"config file {path}: {error}") from None
    unknown = sorted(set(values) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown keys {unknown}; known: {sorted(CONFIG_KEYS)}"
        )
    if isinstance(values.get("peers"), dict):
        values["peers"] = ",".join(f"{k}={v}" for k, v in values["peers"].items())
    return values


def _read_secret(path: object) -> bytes | None:
    if path is None:
        return None
    try:
        secret = Path(str(path)).read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"--secret-file {path}: {error.strerror}") from None
    if len(secret) < SECRET_BYTES_MIN:
        raise ConfigError(
            f"--secret-file {path}: the secret needs at least "
            f"{SECRET_BYTES_MIN} bytes (try: head -c 32 /dev/urandom | base64)"
        )
    return secret


def claim_data_dir(config: NodeConfig) -> bool:
    """Create or check DIR/cluster.json. Returns True if the directory was new.

    Refuses a directory that belongs to another cluster or another node id, or whose
    format this version cannot read.
    """
    directory = config.data_dir
    identity = directory / "cluster.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "groups").mkdir(exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot use data directory {directory}: {error.strerror}") from None
    expected = {
        "format_version": FORMAT_VERSION,
        "cluster_id": config.cluster_id,
        "node_id": config.node_id,
        "members": list(config.members),
        "peers": config.peers_spec,
        "tick_ms": config.tick_ms,
        "known": {str(n): format_address(a) for n, a in sorted(config.known.items())},
    }
    if not identity.exists():
        temporary = identity.with_suffix(".tmp")
        temporary.write_text(json.dumps(expected, indent=2) + "\n")
        os.replace(temporary, identity)
        return True
    found = read_identity(directory)
    assert found is not None
    if found.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"{identity} has format {found.get('format_version')}, this paxdb "
            f"reads format {FORMAT_VERSION}"
        )
    if found.get("cluster_id") != config.cluster_id:
        raise ConfigError(
            f"data directory {directory} belongs to another cluster "
            f"({found.get('cluster_id')}, members {found.get('members')}); "
            "use the same --peers as when it was created, or another --data"
        )
    if found.get("node_id") != config.node_id:
        raise ConfigError(
            f"data directory {directory} belongs to node {found.get('node_id')}, "
            f"not node {config.node_id}"
        )
    return False


def read_identity(directory: Path) -> dict[str, Any] | None:
    """DIR/cluster.json, or None if the directory has none yet."""
    identity = directory / "cluster.json"
    try:
        found = json.loads(identity.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{identity} is unreadable ({error}); is this a paxdb data directory?"
        ) from None
    if not isinstance(found, dict):
        raise ConfigError(f"{identity} is not a paxdb identity file")
    return found
