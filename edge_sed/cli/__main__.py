"""`python -m edge_sed.cli` is `edge-sed`."""

from edge_sed.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
