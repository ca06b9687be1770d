"""Training code: a few steps reduce the loss; the ONNX export matches PyTorch and loads in the
runtime as an `ssd` model. Needs torch (the `train` extra): skipped where it is not installed."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install "
                            "torch==2.13.0): training tests need it")

from edge_agent.core.config.common import DetectorModelConfig  # noqa: E402
from edge_agent.core.detector import Detector  # noqa: E402
from edge_agent.tools.sim import CLASSES  # noqa: E402
from models.training.data import SyntheticSampler, batch  # noqa: E402
from models.training.export import export_onnx  # noqa: E402
from models.training.loss import match, multibox_loss  # noqa: E402
from models.training.nets import AnchorSpec, SSDLite, make_anchors  # noqa: E402
from models.training.train import TrainConfig, train  # noqa: E402

TINY = TrainConfig("tiny", width=0.25, fpn=16, size=(128, 96), anchor_scale=0.5, batch=4,
                   steps=30, lr=3e-3, output="unused.onnx", presets=("easy",), warmup=5)


def test_a_few_steps_on_tiny_data_reduce_the_loss(tmp_path):
    torch.manual_seed(0)
    spec = AnchorSpec().scaled(TINY.anchor_scale)
    model = SSDLite(5, TINY.width, TINY.fpn, spec.per_cell)
    anchors = make_anchors(*TINY.size, spec)
    sampler = SyntheticSampler([1, 2], ["easy"], TINY.size, None, np.random.default_rng(0))
    x, targets = batch(sampler, 4)  # one fixed batch: the model must fit it
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(25):
        logits, reg = model(x)
        loss, _ = multibox_loss(logits, reg, anchors, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])


def test_matching_gives_every_real_box_an_anchor_and_ignores_the_rest():
    anchors = make_anchors(128, 96, AnchorSpec().scaled(0.5))
    boxes = torch.tensor([[0.1, 0.1, 0.3, 0.5], [0.6, 0.6, 0.62, 0.63]])
    target, matched = match(anchors, boxes, torch.tensor([1, -2]))
    assert (target == 1).sum() >= 1
    assert not (target == 2).any() and not (target == -2).any()
    assert target.shape == (anchors.shape[0],) and matched.shape == (anchors.shape[0], 4)
    assert torch.equal(matched[target == 1][0], boxes[0])


def test_train_checkpoints_and_resumes(tmp_path):
    cfg = TrainConfig(**{**TINY.__dict__, "steps": 4, "batch": 2})
    first = train(cfg, tmp_path, progress=False, export=False)
    assert (tmp_path / "last.pt").is_file() and first["steps"] == 4
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["step"] == 4 and len(state["history"]) == 4
    more = TrainConfig(**{**cfg.__dict__, "steps": 6})
    train(more, tmp_path, progress=False, export=False)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["step"] == 6 and len(state["history"]) == 6


def test_export_matches_pytorch_and_loads_as_ssd(tmp_path):
    torch.manual_seed(1)
    spec = AnchorSpec().scaled(TINY.anchor_scale)
    model = SSDLite(5, TINY.width, TINY.fpn, spec.per_cell).eval()
    anchors = make_anchors(*TINY.size, spec)
    path = export_onnx(model, anchors, TINY, tmp_path / "tiny.onnx")
    det = Detector.from_config(DetectorModelConfig(path=path, score_threshold=0.0))
    assert det.layout == "ssd" and det.class_names == CLASSES
    assert det.adapter.preprocess.size == TINY.size
    image = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    feeds, _ = det.adapter.prepare(image)
    onnx_scores, onnx_boxes = (det.backend.run(feeds)[k] for k in ("scores", "boxes"))
    from models.training.nets import ExportWrapper

    with torch.no_grad():
        scores, boxes = ExportWrapper(model, anchors)(torch.from_numpy(feeds["input_0"]))
    assert np.allclose(onnx_scores, scores.numpy(), atol=1e-4)
    assert np.allclose(onnx_boxes, boxes.numpy(), atol=1e-4)
    assert onnx_scores.shape == (1, anchors.shape[0], 6)
