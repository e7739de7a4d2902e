"""``python -m niso_geom.cli``: the ``niso`` command line."""

from niso_geom.cli import main

raise SystemExit(main())
