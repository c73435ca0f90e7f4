"""`python -m paxdb` is the `paxdb` command."""

from paxdb.cli import main

main()
