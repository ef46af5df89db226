"""``python -m xfer_helpers.grading {grade,release,lint}``: the same as ``xfer grade`` etc."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
