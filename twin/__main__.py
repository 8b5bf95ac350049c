"""`python -m twin`: the same as `odc run`."""

import sys

from twin.runtime.cli import main

sys.exit(main())
