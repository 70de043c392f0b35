"""``python -m cnnlib``: the same command line as ``cnnlib``."""

from cnnlib.cli import main

raise SystemExit(main())
