"""Parsing of paxdb URLs (DESIGN.md, "Fixed: URL and driver").

    paxdb://HOST:PORT[,HOST:PORT...]/DATABASE?consistency=local|master|linearizable&timeout=SECONDS

Parsing is strict on purpose: a typo in a URL should fail at `connect()` with a message
naming the bad part, not surface later as a connection to the wrong place or a silently
ignored option. Every problem raises `InterfaceError` (the URL is how the driver is
told where to go; nothing has reached a database yet).

- HOST is a name, an IPv4 address, or an IPv6 address in brackets (`[::1]:8001`).
- PORT is required, 1 to 65535.
- DATABASE is required: letters, digits and `_`, starting with a letter or `_`, at most
  64 characters (the group name a node serves).
- Options: `consistency` (default `master`) and `timeout` in seconds (default 10). An
  unknown or repeated option is an error.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from paxdb.client.protocol import DATABASE_NAME, Consistency
from paxdb.errors import InterfaceError, ProgrammingError

SCHEME = "paxdb"
PORT_MAX = 65_535
ADDRESSES_MAX = 64  # Nodes named in one URL; a cluster has at most 15 members.
URL_CHARS_MAX = 8_192
TIMEOUT_S_DEFAULT = 10.0
TIMEOUT_S_MAX = 86_400.0  # One day: anything longer is surely a unit mistake (ms for s).
CONSISTENCY_DEFAULT = Consistency.MASTER
OPTIONS = ("consistency", "timeout")

_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.\-]{0,252})\Z")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}\Z")


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to connect: node addresses ("host:port", URL order) and options."""

    addresses: tuple[str, ...]
    database: str
    consistency: Consistency = CONSISTENCY_DEFAULT
    timeout_s: float = TIMEOUT_S_DEFAULT


def parse_url(url: str) -> Target:
    """The `Target` a paxdb URL names; raises InterfaceError saying what is wrong."""
    if not isinstance(url, str):
        raise InterfaceError(f"a paxdb URL is a str, not {type(url).__name__}")
    if len(url) > URL_CHARS_MAX:
        raise InterfaceError(f"URL is longer than {URL_CHARS_MAX} characters")
    prefix = SCHEME + "://"
    if not url.startswith(prefix):
        raise InterfaceError(
            f"URL {url!r} must start with {prefix!r}, as in paxdb://127.0.0.1:8001/main"
        )
    rest = url[len(prefix) :]
    if "#" in rest:
        raise InterfaceError(f"URL {url!r} has a fragment ('#...'); remove it")
    rest, _, query = rest.partition("?")
    hosts, slash, database = rest.partition("/")
    if not slash or not database:
        raise InterfaceError(
            f"URL {url!r} names no database: add '/NAME' after the addresses, "
            "as in paxdb://127.0.0.1:8001/main"
        )
    if "@" in hosts:
        raise InterfaceError(f"URL {url!r} has user information ('user@'); paxdb takes none")
    try:
        database = check_database(database)
    except ProgrammingError as error:
        raise InterfaceError(f"URL {url!r}: {error}") from None
    addresses = parse_addresses(hosts)
    consistency, timeout_s = _parse_options(query)
    return Target(addresses, database, consistency, timeout_s)


def parse_addresses(text: str) -> tuple[str, ...]:
    """Comma-separated HOST:PORT items as normalized "host:port" strings, duplicates refused."""
    if not text:
        raise InterfaceError("URL names no node: give at least one HOST:PORT")
    items = text.split(",")
    if len(items) > ADDRESSES_MAX:
        raise InterfaceError(f"URL names {len(items)} nodes; at most {ADDRESSES_MAX} are allowed")
    addresses = tuple(parse_address(item) for item in items)
    if len(set(addresses)) != len(addresses):
        raise InterfaceError(f"URL names a node twice: {text!r}")
    return addresses


def parse_address(item: str) -> str:
    """One HOST:PORT, checked: the result is "host:port" ("[v6]:port" for IPv6)."""
    host, port = split_address(item)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_address(item: str) -> tuple[str, int]:
    """(host, port) of "host:port" or "[v6]:port"; raises InterfaceError if malformed."""
    if item.startswith("["):
        host, bracket, port_text = item[1:].partition("]")
        if not bracket or not _IPV6.match(host) or not port_text.startswith(":"):
            raise InterfaceError(f"node address {item!r} is not [IPV6]:PORT")
        port_text = port_text[1:]
    else:
        host, colon, port_text = item.rpartition(":")
        if not colon:
            raise InterfaceError(f"node address {item!r} has no port: write HOST:PORT")
        if not _HOST_NAME.match(host):
            raise InterfaceError(f"node address {item!r} has no valid host name")
    if not port_text.isdigit() or not 0 < int(port_text) <= PORT_MAX:
        raise InterfaceError(
            f"node address {item!r} has port {port_text!r}: a port is a number 1 to {PORT_MAX}"
        )
    return host, int(port_text)


def check_database(name: object) -> str:
    """`name` if it is a valid database name, else ProgrammingError saying the rule."""
    if not isinstance(name, str) or not DATABASE_NAME.match(name):
        raise ProgrammingError(
            f"database name {name!r} is not valid: use letters, digits and _, "
            "starting with a letter or _, at most 64 characters"
        )
    return name


def check_consistency(value: object) -> Consistency:
    """`value` ("local", "master", "linearizable" or a Consistency) as a Consistency."""
    if isinstance(value, Consistency):
        return value
    if not isinstance(value, str):
        raise ProgrammingError(f"consistency must be a string, not {type(value).__name__}")
    try:
        return Consistency(value)
    except ValueError:
        raise ProgrammingError(
            f"consistency {value!r} is not one of local, master, linearizable"
        ) from None


def check_timeout(value: object) -> float:
    """`value` seconds as a float in (0, TIMEOUT_S_MAX], else ProgrammingError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProgrammingError(f"timeout must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= TIMEOUT_S_MAX):
        raise ProgrammingError(f"timeout {value!r} must be more than 0 and at most {TIMEOUT_S_MAX}")
    return seconds


def _parse_options(query: str) -> tuple[Consistency, float]:
    consistency, timeout_s = CONSISTENCY_DEFAULT, TIMEOUT_S_DEFAULT
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InterfaceError(
            f"URL options {query!r} are not NAME=VALUE pairs joined by &"
        ) from None
    seen: set[str] = set()
    for name, value in pairs:
        if name not in OPTIONS:
            raise InterfaceError(
                f"unknown URL option {name!r}: the options are {', '.join(OPTIONS)}"
            )
        if name in seen:
            raise InterfaceError(f"URL option {name!r} is given twice")
        seen.add(name)
        try:
            if name == "consistency":
                consistency = check_consistency(value)
            else:
                timeout_s = check_timeout(_float(value))
        except ProgrammingError as error:
            raise InterfaceError(f"URL option {name}={value!r}: {error}") from None
    return consistency, timeout_s


def _float(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text
