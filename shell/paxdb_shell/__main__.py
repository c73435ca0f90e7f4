"""`python -m paxdb_shell [URL]`."""

from .main import main

main(prog_name="paxdb-shell")
