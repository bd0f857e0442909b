"""`python -m harness.cli ...` runs the `harness` command (tests and benchmarks start it this way)."""

from harness.cli import main

if __name__ == "__main__":  # vLLM starts its engine processes with spawn, which may import this module again
    main()
