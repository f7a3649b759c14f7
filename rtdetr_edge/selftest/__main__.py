"""``python -m rtdetr_edge.selftest``: the same as ``rtdetr-selftest``."""

from __future__ import annotations

from . import main

if __name__ == "__main__":
    raise SystemExit(main())
