"""The learned feature spaces' configuration in the slow tests.

They fit copy_descriptor with its two-block trunk (about 300 CPU s on digits) rather than
the three-block default (about 950 CPU s), to keep CI inside its time budget;
docs/metrics.md ("Copy detection") gives both recipes' figures.
"""

TEST_DESCRIPTOR_CONFIG = {"blocks": 2}
