"""Configuration parts both sides use, and the YAML loader with env overrides."""
