"""``python -m recbole_ssl --model=ICLRec --dataset=amazon-beauty``: the command line of
``run_recbole_ssl.py``, for an installed package (no clone needed)."""

import sys

from recbole_ssl.cli import main

if __name__ == "__main__":
    sys.exit(main())
