"""URL parsing (DESIGN.md "Fixed: URL and driver") and connect()'s arguments."""

from __future__ import annotations

import pytest

import paxdb.client as driver
from paxdb.client.protocol import Consistency
from paxdb.client.url import Target, parse_url

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("paxdb://127.0.0.1:8001/main", Target(("127.0.0.1:8001",), "main")),
        (
            "paxdb://127.0.0.1:8001,127.0.0.1:8002,db-3.example.com:9000/orders",
            Target(("127.0.0.1:8001", "127.0.0.1:8002", "db-3.example.com:9000"), "orders"),
        ),
        ("paxdb://[::1]:8001/main", Target(("[::1]:8001",), "main")),
        (
            "paxdb://h:1/_db9?consistency=local",
            Target(("h:1",), "_db9", Consistency.LOCAL),
        ),
        (
            "paxdb://h:65535/main?timeout=2.5&consistency=linearizable",
            Target(("h:65535",), "main", Consistency.LINEARIZABLE, 2.5),
        ),
        ("paxdb://h:1/main?consistency=master&timeout=30", Target(("h:1",), "main", timeout_s=30)),
        ("paxdb://h:1/main?", Target(("h:1",), "main")),
    ],
)
def test_good_urls(url: str, target: Target) -> None:
    assert parse_url(url) == target


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:1/main", "must start with 'paxdb://'"),
        ("paxdb:/h:1/main", "must start with 'paxdb://'"),
        ("paxdb://h:1", "names no database"),
        ("paxdb://h:1/", "names no database"),
        ("paxdb://h:1/?timeout=1", "names no database"),
        ("paxdb://h:1/9lives", "database name '9lives' is not valid"),
        ("paxdb://h:1/a/b", "database name 'a/b' is not valid"),
        ("paxdb://h:1/" + "d" * 65, "is not valid"),
        ("paxdb:///main", "names no node"),
        ("paxdb://h/main", "has no port"),
        ("paxdb://h:/main", "has port ''"),
        ("paxdb://h:0/main", "has port '0'"),
        ("paxdb://h:65536/main", "has port '65536'"),
        ("paxdb://h:80a/main", "has port '80a'"),
        ("paxdb://h:-1/main", "has port '-1'"),
        ("paxdb://h:1,/main", "node address '' has no port"),
        ("paxdb://h:1,h:1/main", "names a node twice"),
        ("paxdb://[::1/main", "is not [IPV6]:PORT"),
        ("paxdb://::1:80/main", "no valid host name"),
        ("paxdb://bad_host!:80/main", "no valid host name"),
        ("paxdb://user@h:1/main", "user information"),
        ("paxdb://h:1/main#frag", "fragment"),
        ("paxdb://h:1/main?mode=fast", "unknown URL option 'mode'"),
        ("paxdb://h:1/main?consistency=strong", "consistency 'strong' is not one of"),
        ("paxdb://h:1/main?timeout=abc", "timeout must be a number"),
        ("paxdb://h:1/main?timeout=0", "more than 0"),
        ("paxdb://h:1/main?timeout=-1", "more than 0"),
        ("paxdb://h:1/main?timeout=nan", "more than 0"),
        ("paxdb://h:1/main?timeout=1e9", "at most"),
        ("paxdb://h:1/main?timeout=1&timeout=2", "given twice"),
        ("paxdb://h:1/main?timeout", "not NAME=VALUE"),
    ],
)
def test_bad_urls_raise_interface_error(url: str, message: str) -> None:
    with pytest.raises(driver.InterfaceError, match=None) as caught:
        parse_url(url)
    assert message in str(caught.value)
    with pytest.raises(driver.InterfaceError):
        driver.connect(url)


def test_url_must_be_a_string() -> None:
    with pytest.raises(driver.InterfaceError, match="is a str"):
        parse_url(b"paxdb://h:1/main")  # type: ignore[arg-type]


def test_connect_overrides_url_options() -> None:
    conn = driver.connect("paxdb://h:1/main?timeout=3", timeout=7, consistency="local")
    assert conn.timeout == 7.0
    assert conn.consistency == "local"
    assert conn.database == "main"
    assert conn.addresses == ("h:1",)
    assert conn.autocommit is True
    assert len(conn.client_id) == 32
    conn.close()


def test_connect_defaults() -> None:
    conn = driver.connect("paxdb://h:1/main")
    assert conn.timeout == 10.0
    assert conn.consistency == "master"
    conn.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, driver.InterfaceError, "needs a URL"),
        ({"url": "paxdb://h:1/main", "database": "x"}, driver.InterfaceError, "in it"),
        ({"url": "paxdb://h:1/main", "timeout": 0}, driver.ProgrammingError, "more than 0"),
        ({"url": "paxdb://h:1/main", "timeout": "5"}, driver.ProgrammingError, "number"),
        ({"url": "paxdb://h:1/main", "consistency": "x"}, driver.ProgrammingError, "not one of"),
        ({"url": "paxdb://h:1/main", "autocommit": 1}, driver.ProgrammingError, "True or False"),
        ({"node": object()}, driver.InterfaceError, "client_address()"),
    ],
)
def test_connect_argument_errors(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=None) as caught:
        driver.connect(**kwargs)
    assert message in str(caught.value)


class EmbeddedNode:
    """Stands in for paxdb's embedded Node: the driver's hook is `client_address()`."""

    def __init__(self, address: object) -> None:
        self.address = address

    def client_address(self) -> object:
        return self.address


def test_connect_to_embedded_node() -> None:
    conn = driver.connect(node=EmbeddedNode("127.0.0.1:9001"), database="orders")
    assert conn.addresses == ("127.0.0.1:9001",)
    assert conn.database == "orders"
    conn.close()
    conn = driver.connect(node=EmbeddedNode("127.0.0.1:9001"))
    assert conn.database == "main"
    conn.close()


@pytest.mark.parametrize("address", [None, "nowhere", "h:0"])
def test_connect_to_embedded_node_with_bad_address(address: object) -> None:
    with pytest.raises(driver.InterfaceError):
        driver.connect(node=EmbeddedNode(address))


def test_connect_node_and_url_conflict() -> None:
    with pytest.raises(driver.InterfaceError, match="not both"):
        driver.connect("paxdb://h:1/main", node=EmbeddedNode("h:1"))
