"""``python -m portico`` is the same as the ``portico`` command."""
from portico.cli import main

raise SystemExit(main())
