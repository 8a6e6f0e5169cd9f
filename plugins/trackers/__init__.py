"""Built-in experiment trackers: TensorBoard, MLflow and Weights & Biases.

Each imports its library only when a suite that chose it starts (``Tracker.open``),
so they cost nothing to register; install them with the extras
``benchbase[tensorboard]``, ``benchbase[mlflow]``, ``benchbase[wandb]``.
"""
