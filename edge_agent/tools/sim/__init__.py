"""The synthetic camera world: seeded fixed-camera video with exact ground truth."""

from edge_agent.tools.sim.catalog import CLASSES, COLOURS, SIZES
from edge_agent.tools.sim.options import PRESETS, WorldOptions
from edge_agent.tools.sim.render import Rendered, Renderer
from edge_agent.tools.sim.truth import FrameTruth, ObjectState, ObjectTruth, SceneInfo
from edge_agent.tools.sim.world import SyntheticWorld

__all__ = [
    "CLASSES", "COLOURS", "PRESETS", "SIZES", "FrameTruth", "ObjectState", "ObjectTruth",
    "Rendered", "Renderer", "SceneInfo", "SyntheticWorld", "WorldOptions",
]
