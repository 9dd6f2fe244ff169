"""``python -m benchmarks``: run them all (see :mod:`benchmarks.all`)."""

from .all import main

raise SystemExit(main())
