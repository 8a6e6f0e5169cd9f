"""Driving a model plugin's API directly, as the runner would: data on its device,
steps, samples, checkpoints."""
from __future__ import annotations


class ModelHarness:
    """A model plugin with its data (and labels) on its framework's device, as the
    runner prepares them, for tests that drive the model API directly."""

    def __init__(self, registry, name: str, framework: str, dataset: str, config: dict,
                 dataset_config: dict | None = None, n: int = 128, batch_size: int = 16):
        from benchbase.config import plugin_config
        from benchbase.contracts import TrainData
        from benchbase.data import DataCatalog
        from benchbase.frameworks import get_framework

        reg = registry.get("model", name, framework)
        self.cfg, _ = plugin_config(reg, config, "<test>", "model.config")
        self.cls = reg.cls
        data_reg = registry.get("dataset", dataset)
        data_cfg, plain = plugin_config(data_reg, dataset_config or {}, "<test>", "dataset.config")
        _, splits = DataCatalog.shared().load(data_reg, data_cfg, plain)
        self.fw = get_framework(framework)
        self.device = self.fw.device("cpu")
        x = splits.train[:n]
        y = None if splits.train_labels is None else splits.train_labels[:n]
        self.spec, self.test = splits.spec, splits.test
        self.data = TrainData(x=self.fw.put(x, self.device), y=self.fw.put(y, self.device), spec=splits.spec,
                              device=self.device, x_numpy=x, sample_fresh=lambda k, seed: x[:k])
        self.model = self.cls(self.cfg)
        self.draw = self.fw.drawer(self.data.x, self.data.y, batch_size * self.model.batches_per_step(), 0,
                                   self.device)

    def train(self, state, steps: int, start: int = 0):
        logs = {}
        for step in range(start, start + steps):
            batch, key = self.draw(step)
            state, logs = self.model.train_step(state, batch, key)
        return state, self.fw.scalars(logs)

    def trained(self, seed: int = 123, steps: int = 2):
        """(state, 20 samples) after ``steps`` steps from ``init(data, seed)``, checking
        that the logs are finite and the samples finite float32 in the data's shape."""
        import numpy as np

        state, logs = self.train(self.model.init(self.data, seed), steps)
        assert logs and all(np.isfinite(v) for v in logs.values())
        samples = self.sample(state)
        assert samples.shape == (20, *self.spec.shape) and samples.dtype == np.float32
        assert np.isfinite(samples).all()
        return state, samples

    def sample(self, state, n: int = 20, model=None):
        model = model or self.model
        return self.fw.to_numpy(model.sample(state, n, self.fw.key(7, 2, self.device)))


def assert_repeatable_and_resumable(h, state, samples, seed: int, steps: int, tol: float = 1e-5) -> None:
    """For a model harness ``h`` (model, cls, cfg, data, train(state, steps, start),
    sample(state)) and ``state`` = ``steps`` steps from ``init(data, seed)`` that sampled
    ``samples``: the same seed repeats exactly, another seed differs, and a checkpoint
    restores the model and its optimiser (one more step from either agrees)."""
    import numpy as np

    again, _ = h.train(h.model.init(h.data, seed), steps)
    np.testing.assert_array_equal(h.sample(again), samples)
    other, _ = h.train(h.model.init(h.data, seed + 1), steps)
    assert not np.array_equal(h.sample(other), samples)

    blob = h.model.save(state)
    assert isinstance(blob, bytes)
    restored = h.cls(h.cfg).load(blob, h.data)
    np.testing.assert_array_equal(h.sample(restored), samples)
    resumed, _ = h.train(restored, 1, start=steps)
    continued, _ = h.train(state, 1, start=steps)
    np.testing.assert_allclose(h.sample(resumed), h.sample(continued), rtol=tol, atol=tol)
