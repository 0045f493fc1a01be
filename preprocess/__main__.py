"""``python -m preprocess`` is ``lowmode-preprocess``."""

import sys

from preprocess.cli import main

if __name__ == "__main__":
    sys.exit(main())
