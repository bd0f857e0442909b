"""`python -m harness.cli ...` runs the `harness` command (tests and benchmarks start it this way)."""

from harness.cli import main

main()
