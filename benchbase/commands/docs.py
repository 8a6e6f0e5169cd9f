"""``benchbase docs``: write reference pages generated from the code."""
from __future__ import annotations

import sys
from pathlib import Path

NAME = "docs"
HELP = "generate reference docs (hooks)"
DESCRIPTION = "Write docs generated from the code, e.g. docs/hooks.md from the hook specs."


def add_arguments(p) -> None:
    p.add_argument("what", choices=("hooks",))
    p.add_argument("--out", help="file to write (default: stdout)")


def run(args) -> int:
    from benchbase.hookdocs import render_hooks_markdown

    text = render_hooks_markdown()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
