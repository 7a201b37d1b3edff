"""`python -m backend.cli ...`: the same as `ftstudio ...`."""

from backend.cli import main

main()
