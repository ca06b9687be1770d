"""A cloud whose model has other classes than the edge's (a COCO detector behind a six-class
edge model): answers are read by label, never by another model's class ids, and every merge
keeps the labels right."""

from __future__ import annotations

import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.protocol import WireDetection, from_wire, to_wire
from edge_agent.runtime.offload.answer import relabel
from edge_agent.runtime.offload.hold import with_held
from edge_agent.runtime.offload.merge import merge_window

EDGE = ("person", "bicycle", "car", "motorbike", "bus", "truck")
COCO = ("person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
        "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
        "dog")


def coco(boxes, labels, scores=None) -> Detections:
    return Detections(np.array(boxes, np.float32), np.array(scores or [0.9] * len(boxes),
                                                           np.float32),
                      np.array([COCO.index(x) for x in labels]), COCO)


def test_wire_answers_map_by_label_and_add_the_labels_the_edge_lacks():
    answer = coco([[0, 0, 50, 40], [60, 0, 120, 50], [0, 60, 20, 80]], ["bus", "truck", "dog"])
    wire = to_wire(answer)
    assert [w.class_id for w in wire] == [5, 7, 16]       # the cloud's own ids
    got = from_wire(wire, EDGE)
    assert [got.label(i) for i in range(3)] == ["bus", "truck", "dog"]
    assert got.class_names == (*EDGE, "dog")
    assert got.class_id.tolist() == [4, 5, 6]
    # a label-less item (an older sender) falls back to its id in the names given
    bare = WireDetection(class_id=2, label="", score=0.5, box=[0, 0, 1, 1])
    assert from_wire([bare], EDGE).label(0) == "car"


def test_merges_keep_the_labels_of_both_lists():
    names = (*EDGE, "dog")
    cloud = from_wire(to_wire(coco([[0, 0, 50, 40], [100, 100, 130, 120]], ["truck", "dog"])),
                      EDGE)
    edge = Detections(np.array([[1, 0, 51, 40]], np.float32), np.array([0.4], np.float32),
                      np.array([EDGE.index("car")]), EDGE, np.array([7]))
    merged = dict(merge_window([(0, edge), (1, edge), (2, edge)], [(1, cloud)]))
    for f in (0, 2):
        labels = sorted(merged[f].label(i) for i in range(len(merged[f])))
        assert labels == ["dog", "truck"], labels      # the cloud's class wins, dog carried
        assert merged[f].class_names == names
    relabelled = relabel(edge, {7: names.index("dog")}, names)
    assert relabelled.label(0) == "dog"
    held = with_held(edge, cloud[np.array([False, True])])
    assert sorted(held.label(i) for i in range(len(held))) == ["car", "dog"]
