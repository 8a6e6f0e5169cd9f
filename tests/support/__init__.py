"""Helpers shared by the tests, one module per thing provided (``from support.suites
import tiny_suite``). The tests directory is on ``sys.path`` (pytest puts it there;
worker processes of the executor tests get it through PYTHONPATH or spawn).

- ``suites``: small suite dicts (``tiny_suite``)
- ``model_harness``: a model plugin driven through its API (``ModelHarness``)
- ``metric_contexts``: EvalContexts on raw arrays, Gaussian samples
- ``dataset_files``: tiny datasets written in the published on-disk formats
- ``published_results``: a small quickstart run and stores written without training,
  for the publishing tests (also a plugin module: two test metrics)
- ``dynamics_stores``: stores whose runs memorize on cue, for the dynamics tests
- ``chance_levels``: the chance rows stored beside memorization values, for stores written by hand
- ``executor_runs``: running suites through executors and comparing their numbers
- ``faulty_plugins``: model plugins with injected faults (a plugin module)
- ``tracker_plugins``: a tracker that records every call it gets (a plugin module)
- ``tracker_readers``: what TensorBoard, MLflow and W&B wrote, read back with each tool's reader
- ``ray_cluster``: a real multi-node Ray cluster on this machine, stopped by its process ids;
  ``ray_suite_driver.py`` runs a suite on it from a process of its own
- ``xdist_groups``: ``xdist_group`` markers honoured under ``pytest -n 2 --dist loadgroup``
"""
