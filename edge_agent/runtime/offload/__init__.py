"""The offload path on the edge: policy, keyframes, edge cache, client, answers."""
