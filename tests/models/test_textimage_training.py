"""Training code of the image-text model: captions and their positives, held-out combinations
kept out, a few steps reduce the loss, and the export matches PyTorch through the runtime.
Needs torch (the `train` extra): skipped where it is not installed."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install "
                            "torch==2.13.0): training tests need it")
pytest.importorskip("tokenizers", reason="tokenizers is not installed (pip install '.[train]')")

from cloud_fallback.textimage import TextImageModel  # noqa: E402
from edge_agent.tools.sim.catalog import CLASSES  # noqa: E402
from models.training.textimage import (  # noqa: E402
    COLOUR_NAMES,
    HELD_OUT,
    TextImageConfig,
    build_nets,
    caption,
    export,
    make_crops,
    make_tokenizer,
    positives,
)


def test_captions_are_true_of_their_object_and_positives_follow_the_constraints():
    rng = np.random.default_rng(0)
    for _ in range(200):
        cls, colour, facing = int(rng.integers(5)), int(rng.integers(8)), int(rng.integers(2))
        text, constraint = caption(cls, colour, facing, rng)
        words = text.split()
        if constraint[0] >= 0:
            assert CLASSES[cls] in words or {"pedestrian", "lorry", "bicycle"} & set(words)
        if constraint[1] >= 0:
            assert COLOUR_NAMES[colour] in words
        if constraint[2] >= 0:
            assert "facing" in words
        assert positives(np.array([[cls, colour, facing]]), np.array([constraint]))[0, 0] == 1
    attrs = np.array([[1, 0, 0], [1, 2, 1], [4, 0, 1]])  # red car left, yellow car, red dog
    cons = np.array([[1, -1, -1], [-1, 0, -1], [1, 0, -1], [1, 0, 1]])
    assert positives(attrs, cons).tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]


def test_held_out_combinations_never_reach_training_crops():
    rng = np.random.default_rng(1)
    data = make_crops(range(20, 40), ["normal"], 4, 32, 0.15, rng, include_held_out=False)
    seen = {(COLOUR_NAMES[c], CLASSES[k]) for k, c, _ in data.attrs.tolist()}
    assert len(data.crops) > 50 and not seen & HELD_OUT and not data.held_out.any()
    every = make_crops(range(20, 40), ["normal"], 4, 32, 0.15, np.random.default_rng(1))
    assert len(every.crops) >= len(data.crops)


def test_a_few_steps_reduce_the_loss_and_the_export_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    cfg = TextImageConfig(image_size=32, width=8, dim=32, word_dim=16)
    rng = np.random.default_rng(0)
    data = make_crops(range(50, 60), ["easy"], 3, cfg.image_size, cfg.context, rng)
    image_net, text_net = build_nets(cfg)
    tok = make_tokenizer(cfg.max_length)
    caps = [caption(*a, rng) for a in data.attrs.tolist()]
    enc = tok.encode_batch([c for c, _ in caps])
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    labels = torch.from_numpy(positives(data.attrs, np.array([c for _, c in caps])))
    x = torch.from_numpy(((data.crops[..., ::-1] / 255.0 - 0.5) / 0.5).astype(np.float32)
                         .transpose(0, 3, 1, 2).copy())
    opt = torch.optim.Adam([*image_net.parameters(), *text_net.parameters()], 3e-3)
    losses = []
    for _ in range(40):
        logits = 10 * image_net(x) @ text_net(ids, mask).T - 5
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])

    folder = export(image_net, text_net, tok, cfg, 10.0, -5.0, tmp_path / "model")
    model = TextImageModel.load(folder)
    image_net.eval()
    text_net.eval()
    with torch.no_grad():
        want_img = image_net(x[:8]).numpy()
        want_txt = text_net(ids[:8], mask[:8]).numpy()
    assert np.allclose(model.encode_crops(data.crops[:8]), want_img, atol=1e-4)
    assert np.allclose(model.encode_texts([c for c, _ in caps[:8]]), want_txt, atol=1e-4)


def test_an_attribute_a_crop_does_not_give_is_left_out_of_the_loss():
    """A real crop's colour (when the colour reader abstains) and facing are unknown: a
    caption naming them is neither a positive nor a negative for it, unless another word of
    the caption already contradicts it."""
    from models.training.textimage import ALL_CLASSES, UNKNOWN, targets

    bus, car = ALL_CLASSES.index("bus"), ALL_CLASSES.index("car")
    red, grey = COLOUR_NAMES.index("red"), COLOUR_NAMES.index("grey")
    crops = np.array([[bus, UNKNOWN, UNKNOWN], [car, grey, UNKNOWN], [car, red, 0]])
    captions = np.array([[bus, -1, -1],      # "a bus"
                         [bus, red, -1],     # "a red bus"
                         [car, red, -1],     # "a red car"
                         [-1, grey, -1],     # "something grey"
                         [car, -1, 1]])      # "a car facing right"
    labels, weights = targets(crops, captions)
    assert labels.tolist() == [[1, 0, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0]]
    assert weights.tolist() == [[1, 0, 1, 0, 1],   # colour unknown: "a red bus" left out
                                [1, 1, 1, 1, 0],   # facing unknown: left out
                                [1, 1, 1, 1, 1]]
    assert (positives(crops, captions) == labels).all()
    # and captions say only what is known
    rng = np.random.default_rng(1)
    for _ in range(100):
        text, constraint = caption(bus, UNKNOWN, UNKNOWN, rng)
        assert constraint[1] < 0 and constraint[2] < 0 and "facing" not in text


def test_real_crops_take_the_labels_class_and_the_colour_read_from_pixels(tmp_path, real_data):
    """A teacher-format label folder over a real clip: the crop of a labelled car comes with
    its class and a colour name read from its pixels; ignore regions are left out."""
    import json

    import cv2

    from models.training.textimage import ALL_CLASSES, real_crops

    video = real_data / "vehicle_survaillance.mp4"
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    assert ok
    h, w = frame.shape[:2]
    box = [w * 0.3, h * 0.3, w * 0.6, h * 0.7]
    (tmp_path / "meta.json").write_text(json.dumps({
        "source": str(video), "clip": "vehicle_survaillance", "classes": ["person", "car"]}))
    unknown = {k: "unknown" for k in ("colour", "size", "state", "facing")}
    objects = [{"track_id": -1, "class": "car", "class_id": 2, "attributes": unknown,
                "box": box, "full_box": box,
                "visible_px": 1, "occlusion": 0.0, "truncation": 0.0, "score": 0.9},
               {"track_id": -1, "class": "person", "class_id": 1, "attributes": unknown,
                "box": box, "full_box": box,
                "visible_px": 1, "occlusion": 0.0, "truncation": 0.0, "score": 0.3,
                "ignore": True}]
    (tmp_path / "truth.jsonl").write_text(json.dumps({
        "frame": 0, "t": 0.0, "scene": {"segment": 0, "scene_id": "s", "kind": "fresh",
                                        "base_segment": None, "added_track_id": None},
        "light": 1.0, "objects": objects}) + "\n")
    data = real_crops([tmp_path], 48, 0.15, np.random.default_rng(0))
    assert data.crops.shape == (1, 48, 48, 3)
    cls, colour, facing = data.attrs[0].tolist()
    assert ALL_CLASSES[cls] == "car" and facing < 0
    from models.training.colours import crop_colour
    expected = crop_colour(frame, np.array(box, np.float32), "car")
    assert colour == (COLOUR_NAMES.index(expected) if expected else -1)
