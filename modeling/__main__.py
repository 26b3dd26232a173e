"""``python -m modeling``: the ranker's command line (train, evaluate, score). No Django here."""
import sys

from modeling.ml.cli import main

if __name__ == "__main__":
    sys.exit(main())
