"""Benchmarks: the pipeline against pure inference, offload and the caches, sizes."""
