"""`python -m mocks.one`: the same as the `flagsync-mock` command."""

import sys

from mocks.one.cli import main

sys.exit(main())
