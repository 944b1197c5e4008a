"""Train and evaluate a recbole-ssl or RecBole model.

    python run_recbole_ssl.py --model=ICLRec --dataset=amazon-beauty [--key=value ...]

Any ``--key=value`` not listed in ``--help`` goes to RecBole's Config.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # run from any folder

from recbole_ssl.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
