"""paxdb.Node: the same node, inside the application's process."""

from __future__ import annotations

from pathlib import Path

import pytest
from client import TestClient
from cluster import free_peer_ports

import paxdb
from paxdb.node.config import ConfigError


def client_for(node: paxdb.Node) -> TestClient:
    host, _, port = node.client_address().rpartition(":")
    return TestClient([(host, int(port))])


@pytest.mark.timeout(60)
def test_a_one_node_cluster_serves_writes_and_survives_a_restart(tmp_path: Path) -> None:
    with paxdb.Node(id=1, data=tmp_path) as node:
        assert node.is_master()
        client = client_for(node)
        client.execute("CREATE TABLE jobs(id INTEGER PRIMARY KEY, name)", write=True)
        reply = client.execute("INSERT INTO jobs(name) VALUES (?) RETURNING id", ("a",), write=True)
        assert reply.results[0].rows == ((1,),)
    with paxdb.Node(id=1, data=tmp_path) as node:
        rows = client_for(node).execute("SELECT name FROM jobs").results[0].rows
        assert rows == (("a",),)


@pytest.mark.timeout(90)
def test_three_embedded_nodes_replicate(tmp_path: Path) -> None:
    ports = free_peer_ports(3)
    peers = ",".join(f"{i}=127.0.0.1:{p}" for i, p in enumerate(ports, start=1))
    nodes = [
        paxdb.Node(id=i, data=tmp_path / f"n{i}", listen=f"127.0.0.1:{p}", peers=peers)
        for i, p in enumerate(ports, start=1)
    ]
    try:
        for node in nodes:
            node.start(wait_master=False)
        master = nodes[0].wait_for_master()
        client = client_for(nodes[master - 1])
        client.execute("CREATE TABLE t(v)", write=True)
        last = client.execute("INSERT INTO t VALUES (7)", write=True)
        for node in nodes:
            rows = client_for(node).execute([("SELECT v FROM t", None)], consistency="local")
            assert rows.instance >= 0
        local = TestClient(client_for(nodes[(master % 3)]).addresses)
        for _ in range(50):
            reply = local.execute("SELECT count(*) FROM t", consistency="local")
            if reply.instance >= last.instance:
                break
        assert reply.results[0].rows == ((1,),)
    finally:
        for node in nodes:
            node.stop()


def test_a_node_with_peers_needs_an_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="listen"):
        paxdb.Node(id=1, data=tmp_path, peers="1=127.0.0.1:7001,2=127.0.0.1:7002")
