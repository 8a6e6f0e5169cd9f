"""Text placed in Markdown files: labels come from suite files and stores, and a label such as
``<img src=x onerror=...>`` or ``a|b`` must show as written in every Markdown benchbase writes
(leaderboards, dynamics tables, sensitivity tables), not run as HTML or split a table row."""
from __future__ import annotations

import html
import re

_MD_SPECIAL = re.compile(r"([\\`*\[\]|])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(text: object) -> str:
    """Escape for a GitHub Markdown table cell or line: HTML, the cell separator, emphasis and links."""
    escaped = html.escape(str(text), quote=False)
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), escaped)
