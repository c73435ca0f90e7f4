"""The SQL side of paxdb: determinism checks and the APSW state machine (DESIGN.md)."""
