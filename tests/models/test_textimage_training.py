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
