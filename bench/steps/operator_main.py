"""`stepline run` as a script of its own, for the benchmark: `python -m cProfile` takes a script
path, not `-c`, and the command line does not read `stepline run` (a `pkill -f "stepline run"`
meant for somebody else's operator must not end the measured one)."""

import sys

from stepline.cli import main

if __name__ == "__main__":
    sys.exit(main())
