"""What checking a results file costs: ``Store(...)`` runs ``PRAGMA quick_check`` on every
open (so a damaged file is refused before anything reads or writes it). This times
opening a store of a given size with and without that check, interleaved, and prints
the medians and the time per MB.

    python benchmarks/bench_store_open.py [--mb 50 200] [--repeats 7]

The store is synthetic: runs with evaluation rows and stored samples (random bytes, as
incompressible as real samples), built once per size in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchbase import store as store_module
from benchbase.contracts import EvalRow
from benchbase.store import Store


def build(where: Path, megabytes: int) -> None:
    rng = np.random.default_rng(0)
    sample = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)  # ~200 kB per evaluation
    per_eval = sample.nbytes
    evals = max(1, megabytes * 2**20 // per_eval)
    with Store(where) as store:
        store.conn.execute("BEGIN")
        for i in range(evals):
            run_id = f"run{i // 16:06d}"
            if i % 16 == 0:
                store.conn.execute("INSERT INTO runs (run_id, model, dataset, spec, status) VALUES (?,?,?,?,?)",
                                   (run_id, "m", "d", "{}", "done"))
            store.conn.executemany(
                "INSERT INTO evals VALUES (?,?,?,?,?,?,?,?)",
                [(run_id, i % 16, i, f"metric{k}", "train", float(k), "pixels", "{}") for k in range(8)])
            store.conn.execute("INSERT INTO samples VALUES (?,?,?)",
                               (run_id, i % 16, store_module.encode_array(sample + i)))
        store.conn.execute("COMMIT")


def time_open(where: Path, checked: bool) -> float:
    real = store_module.check_store_file
    if not checked:
        store_module.check_store_file = lambda conn, path: None
    try:
        t0 = time.perf_counter()
        Store(where, create=False).close()
        return time.perf_counter() - t0
    finally:
        store_module.check_store_file = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    out = []
    for mb in args.mb:
        with tempfile.TemporaryDirectory() as tmp:
            where = Path(tmp)
            build(where, mb)
            size = os.path.getsize(where / store_module.DB_NAME) / 2**20
            times: dict[bool, list[float]] = {True: [], False: []}
            for i in range(args.repeats):
                for checked in ((True, False) if i % 2 else (False, True)):
                    times[checked].append(time_open(where, checked))
            with_check, without = statistics.median(times[True]), statistics.median(times[False])
            out.append({"file_mb": round(size, 1), "open_s_checked": round(with_check, 4),
                        "open_s_unchecked": round(without, 4),
                        "check_ms_per_mb": round(1000 * (with_check - without) / size, 3)})
            print(json.dumps(out[-1]))


if __name__ == "__main__":
    main()
