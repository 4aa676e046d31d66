"""`python -m monitor.cli`, as the tests and benchmarks run it."""

import sys

from monitor.cli.main import main

sys.exit(main())
