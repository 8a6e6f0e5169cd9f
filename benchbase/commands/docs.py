"""``benchbase docs``: write reference pages generated from the code."""
from __future__ import annotations

import sys

from benchbase.commands.options import output_file

NAME = "docs"
HELP = "generate reference docs (hooks)"
DESCRIPTION = "Write docs generated from the code, e.g. docs/hooks.md from the hook specs."


def add_arguments(p) -> None:
    p.add_argument("what", choices=("hooks",))
    p.add_argument("--out", help="file to write, its folder created if missing (default: stdout)")


def run(args) -> int:
    from benchbase.hookdocs import render_hooks_markdown

    out = output_file(args.out) if args.out else None
    text = render_hooks_markdown()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
