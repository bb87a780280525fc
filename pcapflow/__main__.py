"""python -m pcapflow: the command line (see pcapflow.cli)."""
import sys

from pcapflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
