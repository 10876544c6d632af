"""Configuration: the typed schema (the only place defaults live) and its resolution."""
