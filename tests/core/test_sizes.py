"""Sizes in text queries ("a small dog"): the camera's scale line the agent learns from its own
detections, and what it says of each detection's size for its class."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.core.detector.detections import Detections
from edge_agent.core.sizes import (
    Perspective,
    class_heights,
    fit_line,
    size_class,
    size_ratio,
    split_size,
)
from edge_agent.tools.sim import CLASSES, SyntheticWorld, WorldOptions

SIZES = ("small", "medium", "large")


def dets_of(boxes, classes, scores=None) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.full(len(boxes), 0.9, np.float32) if scores is None else np.asarray(
        scores, np.float32)
    return Detections(boxes, scores, np.asarray(classes, np.int32), CLASSES)


@pytest.mark.parametrize("query, size, rest", [
    ("a small dog", "small", "a dog"),
    ("Big red truck", "large", "red truck"),
    ("a huge lorry facing left", "large", "a lorry facing left"),
    ("red car", None, "red car"),
    ("small", "small", ""),
])
def test_size_words_are_split_from_the_query(query, size, rest):
    assert split_size(query) == (size, rest)


def test_the_line_is_recovered_through_outliers():
    rng = np.random.default_rng(0)
    y = rng.uniform(120, 350, 2000)
    h = 0.5 * y - 40 + rng.normal(0, 2, len(y))
    h[:300] *= rng.uniform(0.2, 0.6, 300)  # occluded boxes: far shorter than they are
    a, b = fit_line(y, h)
    assert a == pytest.approx(0.5, rel=0.03) and -b / a == pytest.approx(80, abs=6)
    assert fit_line(y, -h) is None  # shrinking towards the camera: not a ground plane


def test_sizes_follow_the_class_and_the_row():
    line = (0.5, -40.0)  # a 1 m object is 0.5*y - 40 px tall at foot row y
    heights = class_heights(CLASSES)
    person, dog = CLASSES.index("person"), CLASSES.index("dog")
    typical_person_at_300 = heights[person] * (0.5 * 300 - 40)  # 187 px
    typical_dog_at_200 = heights[dog] * (0.5 * 200 - 40)  # 36 px
    d = dets_of([[10, 300 - typical_person_at_300, 50, 300],
                 [10, 300 - 0.7 * typical_person_at_300, 50, 300],
                 [10, 200 - 1.3 * typical_dog_at_200, 50, 200]], [person, person, dog])
    r = size_ratio(d, line, heights)
    assert r == pytest.approx([1.0, 0.7, 1.3], abs=0.01)
    assert size_class(r) == ["medium", "small", "large"]
    # A box cut by the frame's border has no size: its height says nothing.
    assert size_class(size_ratio(d, line, heights, frame=(640, 300))) == [None, None, "large"]
    # Above the horizon nothing has a size.
    assert size_class(size_ratio(dets_of([[0, 10, 5, 60]], [person]), line, heights)) == [None]


def test_the_scale_waits_for_minutes_of_detections():
    p = Perspective(CLASSES, min_samples=10, min_seconds=180, refit_every=1)
    person = CLASSES.index("person")
    box = dets_of([[100, 300 - 1.7 * 110, 130, 300], [300, 200 - 1.7 * 60, 320, 200]],
                  [person, person])
    for t in range(0, 170, 1):
        p.add(box, 640, 360, t=float(t))
    assert p.line is None  # plenty of samples, under three minutes
    p.add(box, 640, 360, t=200.0)
    assert p.line is not None


def test_the_agent_learns_only_from_whole_confident_boxes():
    p = Perspective(CLASSES, min_samples=50, min_seconds=0, refit_every=10)
    person = CLASSES.index("person")
    rows = np.linspace(150, 330, 60)
    boxes = [[100, y - 1.7 * (0.5 * y - 40), 130, y] for y in rows]
    p.add(dets_of(boxes, [person] * 60, [0.3] * 60), 640, 360)  # unsure: ignored
    p.add(dets_of([[0, 100, 30, 200]] * 60, [person] * 60), 640, 360)  # cut by the border
    assert p.samples == 0 and p.line is None
    p.add(dets_of(boxes, [person] * 60), 640, 360)
    a, b = p.line
    assert a == pytest.approx(0.5, rel=0.02) and b == pytest.approx(-40, abs=2)


def _world_sizes(seed: int, seconds: float, every: int = 10):
    """(fitted Perspective, [(size class read, true size)]) from a world's own boxes of
    whole objects, read as detections, as the agent would see them."""
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=seed))
    p = Perspective(CLASSES)
    frames = []
    for i in range(0, round(seconds * world.options.fps), every):
        truth = world.render(i)[1]
        objs = [o for o in truth.objects if o.box is not None and o.occlusion < 0.1
                and o.truncation == 0]
        if not objs:
            continue
        d = dets_of([o.box for o in objs], [CLASSES.index(o.cls) for o in objs])
        p.add(d, world.options.width, world.options.height, t=truth.t)
        frames.append((d, [o.size for o in objs]))
    pairs = []
    for d, sizes in frames:
        pairs += list(zip(size_class(size_ratio(d, p.line, p.heights)), sizes, strict=True))
    return p, pairs


def test_sizes_of_a_held_out_world_read_from_its_own_boxes():
    """On a world the agent never saw, the scale learned from five minutes of its boxes
    tells a small, a medium and a large object of a class apart far better than always saying
    the commonest size."""
    p, pairs = _world_sizes(1012, 300)
    assert p.line is not None
    read = [r for r, _ in pairs]
    truth = [t for _, t in pairs]
    accuracy = np.mean([r == t for r, t in pairs])
    commonest = max(truth.count(s) for s in SIZES) / len(truth)
    assert accuracy >= 0.8 and accuracy > commonest + 0.15, (accuracy, commonest)
    for s in SIZES:  # every size is read, and mostly where it is true
        picked = [t for r, t in pairs if r == s]
        if truth.count(s) >= 50:
            assert picked.count(s) >= 0.6 * len(picked), s
    assert len(set(read)) == 3


def test_bench_sizes_reads_the_real_detectors_output():
    """`edge-agent bench sizes` end to end on a short clip: the scale from the edge model's
    detections, sizes of another model's, judged against the truth."""
    from edge_agent.core.bundled import bundled_edge_model
    from edge_agent.core.config.common import DetectorModelConfig
    from edge_agent.core.detector import Detector
    from edge_agent.tools.bench.sizes import bench_sizes

    edge = Detector.from_config(DetectorModelConfig(path=bundled_edge_model()))
    r = bench_sizes(edge, edge, [1000], "normal", 24, fit_every=3, judge_every=6,
                    min_seconds=10)
    seed = r["per_seed"][0]
    assert seed["line"] is not None and seed["horizon_row"] < 200
    assert r["judged"] > 20 and 0 <= r["accuracy"] <= 1
    assert sum(sum(row.values()) for row in r["confusion"].values()) == r["judged"]
    assert r["accuracy"] > 1 / 3  # better than a guess, even from 24 seconds


def test_a_size_in_a_query_picks_objects_of_that_size():
    """"a large person" and "a small person" on the same frame, with the scale learned from
    the world: each matches only people of its size, and they are people of that size."""
    pytest.importorskip("tokenizers", reason="the image-text model needs `tokenizers`")
    from cloud_fallback.opinion import TextOpinion
    from cloud_fallback.textimage import TextImageModel
    from edge_agent.core.bundled import bundled_text_model

    p, _ = _world_sizes(1011, 300)
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=1011))
    op = TextOpinion(TextImageModel.load(bundled_text_model()), CLASSES, match_threshold=0.3)
    found: dict[str, list[str]] = {"large": [], "small": []}
    for i in range(0, 9000, 150):
        rendered, truth = world.render(i)
        objs = [o for o in truth.objects if o.box is not None and o.occlusion < 0.1
                and o.truncation == 0]
        if not objs:
            continue
        d = dets_of([o.box for o in objs], [CLASSES.index(o.cls) for o in objs])
        _, matches = op.apply([rendered.image], [d], [i], [(1.0, 1.0)],
                              ["a large person", "a small person"], p.line)
        for m in matches:
            k = next(k for k, o in enumerate(objs) if list(map(float, o.box)) == m.box)
            assert m.size == m.query.split()[1] and m.label == "person"
            found[m.size].append(objs[k].size)
    for size, truths in found.items():
        assert len(truths) >= 5, size
        assert truths.count(size) >= 0.8 * len(truths), (size, truths)
    # Without the scale, a size cannot be read: nothing matches.
    assert op.apply([rendered.image], [d], [i], [(1.0, 1.0)], ["a large person"])[1] == []
