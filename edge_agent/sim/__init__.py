"""The synthetic camera world: seeded fixed-camera video with exact ground truth."""

from edge_agent.sim.catalog import CLASSES, COLOURS, SIZES
from edge_agent.sim.options import PRESETS, WorldOptions
from edge_agent.sim.render import Rendered, Renderer
from edge_agent.sim.truth import FrameTruth, ObjectState, ObjectTruth, SceneInfo
from edge_agent.sim.world import SyntheticWorld

__all__ = [
    "CLASSES", "COLOURS", "PRESETS", "SIZES", "FrameTruth", "ObjectState", "ObjectTruth",
    "Rendered", "Renderer", "SceneInfo", "SyntheticWorld", "WorldOptions",
]
