"""``python -m flows.cli``: the `alignment` command."""

import sys

from flows.cli.parser import main

sys.exit(main())
