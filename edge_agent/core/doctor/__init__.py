"""Checks both doctors share: report lines, the machine, the model, the broker and Redis."""
