"""`python -m sweeps` is `sweep`."""

from sweeps.cli import main

main()
