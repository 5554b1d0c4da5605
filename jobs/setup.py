"""`behaviorlm setup`: cache the Delta jars, MovieLens-100K and the default model so later runs and tests work
offline (each step skipped when already cached; see `behaviorlm.assets`).
Run: `behaviorlm setup` (the Makefile does it for `make demo` and `make test`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from behaviorlm.assets import setup_all
from behaviorlm.logs import setup_logging

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    setup_logging()
    done = setup_all()
    for what, path in done.items():
        log.info("%-15s %s", what, path)
    return done
