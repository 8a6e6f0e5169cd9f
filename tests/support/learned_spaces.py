"""The learned feature spaces' configuration in the slow tests.

They fit copy_descriptor with its two-block trunk for 1500 steps (about 300 CPU s on
digits) rather than the default three-block trunk for 3000 steps (about 2,000 CPU s), to
keep CI inside its time budget; docs/metrics.md ("Copy detection") gives both recipes'
figures.
"""

TEST_DESCRIPTOR_CONFIG = {"blocks": 2, "steps": 1500}
