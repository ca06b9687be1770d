"""The cloud's recipe and its cache key: what keys the shared cache (the scale line, the worker's
answer settings) and the fusion of keyframes."""

from __future__ import annotations

import pytest
from offload_kit import dets, request


def test_the_scale_line_keys_the_cloud_cache_only_for_a_size_query():
    from cloud_fallback.cache import content_key

    plain, line = request(), request(perspective=[0.25, -24.0])
    assert content_key(plain, "m") == content_key(line, "m")
    sized = request(queries=["a small dog"])
    assert content_key(sized, "m") != content_key(
        request(queries=["a small dog"], perspective=[0.25, -24.0]), "m")


def test_settings_that_change_answers_key_the_cloud_cache():
    from cloud_fallback.config import CloudConfig
    from cloud_fallback.worker import Worker

    def key(**model):
        cfg = CloudConfig.model_validate({"mqtt": {"host": "127.0.0.1"},
                                          "model": {"text": {"enabled": False}, **model}})
        return Worker(cfg).answer_model_id

    base = key()
    wbf = {"merge": "wbf"}
    assert len({base, key(fusion_weight=0.5), key(tiles=None), key(min_score=0.3),
                key(fuse_keyframes=False), key(**wbf), key(**wbf, flip=True),
                key(**wbf, tiles="auto"), key(**wbf, tiles="auto", tile_px=300)}) == 9
    assert key() == base


def test_the_full_model_settings_need_weighted_box_fusion():
    from pydantic import ValidationError

    from cloud_fallback.config import CloudConfig

    for model in ({"flip": True}, {"tiles": "auto"}, {"extra_detectors": [{"path": "b.onnx"}]}):
        with pytest.raises(ValidationError, match="need merge: wbf"):
            CloudConfig.model_validate({"mqtt": {"host": "h"}, "model": model})
    with pytest.raises(ValidationError, match=r"2x2 .*auto or null"):
        CloudConfig.model_validate({"mqtt": {"host": "h"}, "model": {"tiles": "5x1"}})
    pytest.importorskip("ensemble_boxes")
    from cloud_fallback.worker import Worker
    from edge_agent.core.detector.ensemble import EnsembleDetector

    cfg = CloudConfig.model_validate({"mqtt": {"host": "h"}, "model": {
        "merge": "wbf", "flip": True, "tiles": "auto", "text": {"enabled": False}}})
    worker = Worker(cfg)
    assert isinstance(worker.detector, EnsembleDetector)
    assert len(worker.detector.views(640, 360)) == 2 + 3 * 2


def test_fusion_rescores_by_support_in_the_other_keyframes():
    from cloud_fallback.fusion import FUSION_WEIGHT, fuse_keyframes

    car, ghost = [0, 0, 40, 30], [200, 200, 230, 220]
    a = dets([car, ghost], [0.8, 0.6], [1, 1])
    b = dets([[2, 0, 42, 30]], [0.9], [1])          # the car, moved a little; no ghost
    c = dets([[4, 0, 44, 30]], [0.7], [2])          # the same place, another class
    for w in (FUSION_WEIGHT, 0.5):
        fa, fb, fc = fuse_keyframes([a, b, c], weight=w)
        assert fa.score.tolist() == pytest.approx([(1 - w) * 0.8 + w * (0.9 + 0) / 2,
                                                   (1 - w) * 0.6])
        assert fb.score.tolist() == pytest.approx([(1 - w) * 0.9 + w * 0.8 / 2])
        assert fc.score.tolist() == pytest.approx([(1 - w) * 0.7])
    assert fuse_keyframes([a]) == [a]
