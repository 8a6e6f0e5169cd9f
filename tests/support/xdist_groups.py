"""Makes ``pytest -n 2 --dist loadgroup`` honour ``xdist_group`` markers under pytest 9.2
(tests/conftest.py calls it; tests/test_xdist_groups.py checks it in a small session)."""
from __future__ import annotations

import os


def send_each_xdist_group_to_one_worker(config, items) -> None:
    """``--dist loadgroup`` schedules by a ``@group`` suffix of each test's node id, which
    pytest-xdist's worker appends by writing ``item._nodeid``; pytest 9.2 keeps node ids in
    ``item._id`` instead, so that write changes nothing and every ``xdist_group`` is silently
    ignored: grouped tests run at once on both workers (a test that pip-installs plugins
    beside one that lists them) and shared fixtures are built once per worker. Where the
    suffix is missing on an xdist worker, it is written where this pytest reads it."""
    if not getattr(config.option, "loadgroup", False) or not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if not names:
            continue
        suffix = "@" + "_".join(names)
        if item.nodeid.endswith(suffix):
            continue  # this pytest-xdist and pytest agree
        if hasattr(item, "_id"):
            from _pytest.nodeid import NodeId

            # the suffix follows the parameters, as pytest-xdist writes it: kept in the last
            # name, so the id prints back as "file.py::test[param]@group"
            last = item._id.names[-1] + (f"[{item._id.params}]" if item._id.params is not None else "")
            item._id = NodeId(path=item._id.path, names=(*item._id.names[:-1], last + suffix))
        else:
            item._nodeid = item.nodeid + suffix
