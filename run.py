#!/usr/bin/env python3
"""`python run.py ...` is the `tdc` command of a checkout (actors/cli.py; `python run.py --help`,
docs/cli.md): `run.py --sim`, `run.py` (live), `run.py --replay DIR [--speed X]`, `run.py <actor>`
(what supervisord.conf runs), and the tools (`run.py export --help`, ...)."""
import sys

from actors.cli import main

if __name__ == "__main__":
    sys.exit(main())
