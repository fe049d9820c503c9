"""`python -m orchestration.segments check|compile`."""

import sys

from orchestration.segments.build import main

sys.exit(main())
