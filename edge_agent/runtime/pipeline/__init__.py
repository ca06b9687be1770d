"""The agent's pipeline: per-camera state, the detection stages, the post thread, answers
applied, stats. `Agent` wires them."""

from edge_agent.runtime.pipeline.agent import Agent
from edge_agent.runtime.pipeline.camera import CameraPipeline

__all__ = ["Agent", "CameraPipeline"]
