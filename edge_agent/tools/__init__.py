"""Tools around the product: the synthetic world, benchmarks, evaluation and quantization.
They may import the runtime, the core and the cloud worker; nothing in the runtime imports
them."""
