"""``python -m gankit``."""

from .cli import main

raise SystemExit(main())
