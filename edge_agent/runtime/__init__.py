"""The edge agent's runtime: capture, the pipeline stages, tracker, window, events, the
publisher and the offload path. It never imports the tools (simulator, benchmarks, evaluation,
quantization, training) or the cloud worker."""
