"""Fail if an executed notebook page of the built site shows no figure.

Run after ``sphinx-build`` (``make docs`` does): every page under ``notebooks/`` must
contain at least one ``<img`` (the notebooks' matplotlib output). Before the inline-backend
fix in ``conf.py`` none did, and the text's "the figure shows ..." pointed at nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(site: str) -> int:
    pages = sorted((Path(site) / "notebooks").glob("*.html"))
    if not pages:
        print(f"check_figures: no notebook pages under {site}/notebooks", file=sys.stderr)
        return 1
    bare = [p.name for p in pages if "<img" not in p.read_text(encoding="utf-8")]
    for page in pages:
        print(f"{page.name}: {page.read_text(encoding='utf-8').count('<img')} figure(s)")
    if bare:
        print(f"check_figures: no figure on {', '.join(bare)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html"))
