"""Built-in publisher plugins."""
