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
    "benchbase_plugins.models.torch_vae",
    "benchbase_plugins.metrics.memorization",
    "benchbase_plugins.metrics.fidelity",
    "benchbase_plugins.features.pixels",
    "benchbase_plugins.executors.local",
    "benchbase_plugins.publishers.tables",
)
