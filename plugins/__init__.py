"""Built-in plugins, registered through the same hooks as third-party plugins.

Installed under the import name ``benchbase_plugins``. Each module listed here is
one pluggy plugin; block one with BENCHBASE_BLOCK_PLUGINS=<module name>.
"""

BUILTIN_PLUGINS = (
    "benchbase_plugins.datasets.synthetic",
    "benchbase_plugins.datasets.calpha",
    "benchbase_plugins.datasets.digits",
    "benchbase_plugins.datasets.mnist",
    "benchbase_plugins.datasets.cifar10",
    "benchbase_plugins.datasets.celeba",
    "benchbase_plugins.datasets.image_folder",
    "benchbase_plugins.models.oracles",
    "benchbase_plugins.models.torch_flow",
    "benchbase_plugins.models.torch_ddpm",
    "benchbase_plugins.models.jax_flow",
    "benchbase_plugins.models.jax_ddpm",
    "benchbase_plugins.models.empirical_denoiser",
    "benchbase_plugins.models.torch_vae",
    "benchbase_plugins.models.torch_gan",
    "benchbase_plugins.models.jax_gan",
    "benchbase_plugins.models.jax_vae",
    "benchbase_plugins.models.torch_wae",
    "benchbase_plugins.models.jax_wae",
    "benchbase_plugins.metrics.memorization",
    "benchbase_plugins.metrics.fidelity",
    "benchbase_plugins.metrics.novelty",
    "benchbase_plugins.metrics.manifold",
    "benchbase_plugins.metrics.diversity",
    "benchbase_plugins.metrics.model_aware",
    "benchbase_plugins.metrics.likelihood",
    "benchbase_plugins.features.pixels",
    "benchbase_plugins.features.random_conv",
    "benchbase_plugins.features.pretrained",
    "benchbase_plugins.features.trained_encoder",
    "benchbase_plugins.executors.local",
    "benchbase_plugins.executors.process",
    "benchbase_plugins.executors.ray",
    "benchbase_plugins.publishers.tables",
    "benchbase_plugins.publishers.latex",
    "benchbase_plugins.publishers.html",
)
