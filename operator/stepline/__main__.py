"""`python -m stepline` is the `stepline` command."""

import sys

from stepline.cli import main

sys.exit(main())
