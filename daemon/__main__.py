"""`python -m daemon` is `switchboard`."""

from daemon.cli import main

main()
