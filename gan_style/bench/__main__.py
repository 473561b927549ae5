"""``python -m gan_style.bench``: the same as ``gan-style bench``."""

from .run import main

raise SystemExit(main())
