"""Osprey cloud fallback: refines low-confidence windows offloaded by edge agents."""

from edge_agent import __version__

__all__ = ["__version__"]
