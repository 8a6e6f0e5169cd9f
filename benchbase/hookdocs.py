"""Renders ``docs/hooks.md`` from the hook specs, so the reference cannot drift."""
from __future__ import annotations

import inspect

from benchbase import hookspecs


def hook_functions() -> list:
    return [getattr(hookspecs, name) for name in dir(hookspecs)
            if name.startswith("benchbase_") and callable(getattr(hookspecs, name))]


def render_hooks_markdown() -> str:
    order = {fn.__name__: fn.__code__.co_firstlineno for fn in hook_functions()}
    lines = [
        "# Hook reference",
        "",
        "<!-- Generated from benchbase/hookspecs.py by `benchbase docs hooks --out docs/hooks.md`;",
        "     tests/test_hookspecs.py fails when this page is stale. Do not edit by hand. -->",
        "",
        inspect.getdoc(hookspecs) or "",
        "",
        "Implement a hook in a plugin module with the marker:",
        "",
        "```python",
        "from benchbase import hookimpl",
        "```",
        "",
    ]
    for fn in sorted(hook_functions(), key=lambda f: order[f.__name__]):
        sig = inspect.signature(fn)
        lines += [f"## `{fn.__name__}{sig}`", "", inspect.getdoc(fn) or "(undocumented)", ""]
    return "\n".join(lines).rstrip() + "\n"
