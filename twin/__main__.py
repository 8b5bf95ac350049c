"""`python -m twin`: the same as `odc run`."""

import sys

from twin.cli import main

sys.exit(main())
