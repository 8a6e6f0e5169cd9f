"""Built-in feature extractors."""
