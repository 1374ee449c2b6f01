"""
Sphinx configuration of the aphelion documentation.

The pages are written by hand in reST: nothing here imports aphelion, so the
documentation builds without the package's dependencies.
"""

from __future__ import annotations

import re
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def _version() -> str:
    """
    Read ``__version__`` from the text of ``aphelion/__init__.py``.
    """
    text = (_ROOT / "aphelion" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text, re.MULTILINE)
    if match is None:
        raise RuntimeError("no __version__ in aphelion/__init__.py")
    return match.group(1)


project = "aphelion"
author = "the aphelion authors"
copyright = "the aphelion authors"
release = _version()
version = ".".join(release.split(".")[:2])

extensions: list[str] = []

root_doc = "index"
language = "en"
exclude_patterns = ["_build"]
pygments_style = "sphinx"
highlight_language = "text"

html_theme = "alabaster"
html_title = f"aphelion {release}"
html_theme_options = {
    "description": "A Twisted game-networking gateway",
    "fixed_sidebar": True,
}
