"""``python -m gan_style.bench``: the same as ``gan-style bench``."""

from ..cli.bench import main

raise SystemExit(main())
