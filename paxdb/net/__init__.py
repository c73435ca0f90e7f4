"""The node-to-node transport: asyncio TCP, peer authentication, reconnect with backoff.

See transport.py for the theory of operation and handshake.py for the handshake.
uvloop is installed by the node's entry point, never on import.
"""

from __future__ import annotations

from paxdb.net.handshake import HandshakeRejected
from paxdb.net.link import TransportStats
from paxdb.net.transport import Transport

__all__ = ["HandshakeRejected", "Transport", "TransportStats"]
