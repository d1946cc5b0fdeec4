"""`python -m actors ...` is the `tdc` command line (actors/cli.py); supervisord.conf runs every
actor as `python -m actors NAME`, from a checkout or an installed package alike."""
import sys

from actors.cli import main

if __name__ == "__main__":
    sys.exit(main())
