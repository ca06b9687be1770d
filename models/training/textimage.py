"""Osprey's image-text model: a small dual encoder trained on synthetic-world crops and captions.

Crops of ground-truth objects (boxes jittered like a detector's, frames JPEG-compressed like
keyframes) are paired with captions built from the truth: class, colour and facing, at every
level of detail ("a dog", "a yellow dog", "a yellow dog facing left", "something yellow"). A
caption is a positive for every crop it is true of, so the loss is a pairwise sigmoid
(SigLIP-style) over all crop-caption pairs of a batch, not a softmax with one right answer.
Size is not in the captions: an object's size class is relative to its distance from the
camera, which a crop does not show.

Some colour-class combinations are held out entirely: no crop of a yellow dog and no caption
"yellow dog" is ever seen in training. Retrieval on them measures open-vocabulary behaviour.

    python -m models.training.textimage train --run-dir runs/textimage
    python -m models.training.textimage eval --model models/textimage
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.tools.sim import SyntheticWorld, WorldOptions
from edge_agent.tools.sim.catalog import CLASSES, COLOURS

FACINGS = ("left", "right")
REAL_ONLY_CLASSES = ("bicycle", "motorbike", "bus")
ALL_CLASSES = (*CLASSES, *REAL_ONLY_CLASSES)
"""Class ids of the crops' attributes: the synthetic world's classes (ids unchanged), then
those only real crops show (COCO names, as a real cloud detector labels them)."""
WORLD_COLOURS = tuple(COLOURS)
COLOUR_NAMES = (*WORLD_COLOURS, "grey")
"""The world's eight flat colours, then grey (silver cars, concrete-coloured clothes: real
crops only)."""
UNKNOWN = -1
"""An attribute a crop's label does not give (a real crop's facing; its colour when the colour
reader abstains): captions about it are neither right nor wrong for that crop."""
HELD_OUT: frozenset[tuple[str, str]] = frozenset({
    ("yellow", "dog"), ("blue", "truck"), ("purple", "person"), ("green", "car"),
    ("orange", "cyclist"),
})
"""(colour, class) pairs never seen in training, neither as crops nor as captions."""

CLASS_WORDS: dict[str, tuple[str, ...]] = {
    "person": ("person", "pedestrian"),
    "car": ("car",),
    "truck": ("truck", "lorry"),
    "cyclist": ("cyclist",),
    "dog": ("dog",),
    "bicycle": ("bicycle", "bike"),
    "motorbike": ("motorbike", "motorcycle"),
    "bus": ("bus",),
}
PREFIXES = ("a", "a", "the", "a photo of a", "")
FILLERS = ("small", "big", "large", "old", "new", "parked", "moving", "shiny", "street",
           "scene", "in", "on", "road")
"""Words outside the vocabulary, dropped into some captions: they tokenize to [UNK], and the
model learns that [UNK] changes nothing ("a small dog" reads as "a dog")."""
SPECIALS = ("[PAD]", "[UNK]")
MIN_VISIBLE_PX = 80
TRAIN_SEEDS = range(0, 1000)
EVAL_SEEDS = range(1000, 1010)
PROMPT = "a {label}"


def vocabulary() -> list[str]:
    words = {"a", "the", "photo", "of", "something", "object", "facing", *FACINGS,
             *COLOUR_NAMES}
    for names in CLASS_WORDS.values():
        words.update(names)
    return [*SPECIALS, *sorted(words)]


def caption(cls: int, colour: int, facing: int, rng: np.random.Generator) -> tuple[str, tuple]:
    """A caption true of an object, and its constraint (class, colour, facing; -1 = any)."""
    word = str(rng.choice(CLASS_WORDS[ALL_CLASSES[cls]]))
    col = COLOUR_NAMES[colour] if colour >= 0 else None
    face = FACINGS[facing] if facing >= 0 else None
    prefix = str(rng.choice(PREFIXES))
    # only what the label gives: no colour words for an unknown colour, no facing unknown
    p = np.array([0.45 * (col is not None), 0.15 * (col is not None and face is not None),
                  0.15, 0.1 * (face is not None), 0.15 * (col is not None)])
    kind = rng.choice(5, p=p / p.sum())
    if kind == 0:
        text, c = f"{prefix} {col} {word}", (cls, colour, -1)
    elif kind == 1:
        text, c = f"{prefix} {col} {word} facing {face}", (cls, colour, facing)
    elif kind == 2:
        text, c = f"{prefix} {word}", (cls, -1, -1)
    elif kind == 3:
        text, c = f"{prefix} {word} facing {face}", (cls, -1, facing)
    else:
        text = f"something {col}" if rng.random() < 0.5 else f"a {col} object"
        c = (-1, colour, -1)
    words = text.split()
    if rng.random() < 0.25:
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(FILLERS)))
    return " ".join(words), c


def positives(attrs: np.ndarray, constraints: np.ndarray) -> np.ndarray:
    """(n_crops, n_captions) 1.0 where a caption's constraint holds for a crop."""
    return targets(attrs, constraints)[0]


def targets(attrs: np.ndarray, constraints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, weights), each (n_crops, n_captions): a caption is true of a crop (1) when
    every attribute it names matches, false (0) when one it names contradicts a known one,
    and unknown (weight 0, left out of the loss) when it names an attribute the crop's label
    does not give and nothing contradicts ("a red car" is false of a bus whose colour is
    unknown, and unknown for a car whose colour is unknown)."""
    c, a = constraints[None, :, :], attrs[:, None, :]
    named = c >= 0
    known = a >= 0
    contradicts = (named & known & (c != a)).any(axis=2)
    unknown = (named & ~known).any(axis=2)
    labels = (~contradicts & ~unknown).astype(np.float32)
    weights = (contradicts | ~unknown).astype(np.float32)
    return labels, weights


# data ----------------------------------------------------------------------------------------


@dataclass
class CropSet:
    crops: np.ndarray
    """(n, s, s, 3) uint8 BGR."""
    attrs: np.ndarray
    """(n, 3) int: class, colour, facing."""
    held_out: np.ndarray
    """(n,) bool: a held-out colour-class combination."""

    def save(self, path: Path) -> None:
        np.savez(path, crops=self.crops, attrs=self.attrs, held_out=self.held_out)

    @classmethod
    def load(cls, path: Path) -> CropSet:
        z = np.load(path)
        return cls(z["crops"], z["attrs"], z["held_out"])


def make_crops(seeds, presets: list[str], frames_per_world: int, size: int, context: float,
               rng: np.random.Generator, *, jitter: float = 0.0, jpeg: bool = False,
               max_occlusion: float = 0.4, include_held_out: bool = True,
               progress: bool = False) -> CropSet:
    """Crops of ground-truth objects at random instants of each (seed, preset) world."""
    from cloud_fallback.textimage import letterbox_crop

    crops, attrs, held = [], [], []
    worlds = [(s, p) for s in seeds for p in presets]
    t0 = time.time()
    for k, (seed, preset) in enumerate(worlds):
        world = SyntheticWorld(WorldOptions.from_preset(preset, seed=seed))
        for index in rng.integers(0, 30 * 600, frames_per_world):
            rendered, truth = world.render(int(index))
            image = rendered.image
            if jpeg:
                _, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY,
                                                       int(rng.integers(60, 96))])
                image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            for o in truth.visible():
                if (o.visible_px < MIN_VISIBLE_PX or o.occlusion > max_occlusion
                        or o.truncation > 0.3):
                    continue
                combo = (o.colour, o.cls) in HELD_OUT
                if combo and not include_held_out:
                    continue
                box = np.asarray(o.box, np.float32)
                if jitter:
                    w, h = box[2] - box[0], box[3] - box[1]
                    box += rng.normal(0, jitter, 4).astype(np.float32) * [w, h, w, h]
                crops.append(letterbox_crop(image, box, size, context))
                attrs.append((CLASSES.index(o.cls), COLOUR_NAMES.index(o.colour),
                              FACINGS.index(o.facing)))
                held.append(combo)
        if progress and (k + 1) % 50 == 0:
            print(f"  crops: {k + 1}/{len(worlds)} worlds, {len(crops)} crops, "
                  f"{time.time() - t0:.0f} s", flush=True)
    return CropSet(np.stack(crops), np.asarray(attrs, np.int64), np.asarray(held, bool))


REAL_MIN_SIDE = 16
"""Real crops need this many pixels on their short side (a colour and a class to read)."""
REAL_NAMES = {"motorcycle": "motorbike"}
"""COCO spellings the teacher may use -> ALL_CLASSES."""


def real_crops(pseudo_dirs: list[Path], size: int, context: float, rng: np.random.Generator,
               *, jitter: float = 0.0, jpeg: bool = False, progress: bool = False) -> CropSet:
    """Crops of the teacher's confident labels (ignore regions left out) of real clips: the
    class from the label, the colour read from the crop's pixels (models.training.colours;
    unknown where it abstains), the facing unknown."""
    from cloud_fallback.textimage import letterbox_crop
    from edge_agent.tools.evaluate import load_labels
    from models.training.colours import crop_colour

    crops, attrs = [], []
    for k, folder in enumerate(pseudo_dirs):
        clip = load_labels(folder)
        wanted = sorted(clip.truths)
        cap = cv2.VideoCapture(str(clip.video))
        index = 0
        for frame in wanted:
            while index <= frame:
                ok, image = cap.read()
                index += 1
                if not ok:
                    break
            if not ok:
                break
            seen = image
            if jpeg:
                _, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY,
                                                       int(rng.integers(60, 96))])
                seen = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            for o in clip.truths[frame].objects:
                cls = REAL_NAMES.get(o.cls, o.cls)
                box = np.asarray(o.box, np.float32)
                if o.ignore or cls not in ALL_CLASSES or \
                        min(box[2] - box[0], box[3] - box[1]) < REAL_MIN_SIDE:
                    continue
                colour = crop_colour(image, box, cls)
                if jitter:
                    w, h = box[2] - box[0], box[3] - box[1]
                    box = box + rng.normal(0, jitter, 4).astype(np.float32) * [w, h, w, h]
                crops.append(letterbox_crop(seen, box, size, context))
                attrs.append((ALL_CLASSES.index(cls),
                              COLOUR_NAMES.index(colour) if colour else UNKNOWN, UNKNOWN))
        cap.release()
        if progress:
            print(f"  real crops: {k + 1}/{len(pseudo_dirs)} clips, {len(crops)} crops",
                  flush=True)
    return CropSet(np.stack(crops), np.asarray(attrs, np.int64),
                   np.zeros(len(crops), bool))


# model ---------------------------------------------------------------------------------------


@dataclass
class TextImageConfig:
    image_size: int = 48
    context: float = 0.15
    dim: int = 128
    width: int = 16
    word_dim: int = 96
    max_length: int = 16
    steps: int = 2000
    batch: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    seed: int = 0
    train_worlds: int = 600
    frames_per_world: int = 12
    presets: tuple[str, ...] = ("easy", "normal", "hard")
    jitter: float = 0.06
    real_pseudo: str | None = None
    """The teacher's labels of real clips (`python -m edge_agent.tools.teacher`): crops of
    the MANIFEST's `train` clips join the synthetic ones; None: synthetic crops only."""
    real_share: float = 0.5
    """Share of each batch drawn from the real crops."""


def build_nets(cfg: TextImageConfig):
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    w = cfg.width

    class ImageEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                block(3, w, 1), block(w, 2 * w, 2), block(2 * w, 2 * w, 1),
                block(2 * w, 4 * w, 2), block(4 * w, 4 * w, 1), block(4 * w, 8 * w, 2),
                block(8 * w, 8 * w, 1))
            self.head = nn.Linear(8 * w, cfg.dim)

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            x = self.features(pixel_values).mean(dim=(2, 3))
            return nn.functional.normalize(self.head(x), dim=-1)

    class TextEncoder(nn.Module):
        """Mean of word embeddings over the mask, then an MLP: a bag of words suits captions
        of attribute words, and composes to attribute pairs it has not seen together."""

        def __init__(self, vocab: int) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, cfg.word_dim, padding_idx=0)
            self.mlp = nn.Sequential(nn.Linear(cfg.word_dim, 2 * cfg.dim), nn.ReLU(),
                                     nn.Linear(2 * cfg.dim, cfg.dim))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            m = attention_mask.to(torch.float32).unsqueeze(-1)
            x = (self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
            return nn.functional.normalize(self.mlp(x), dim=-1)

    return ImageEncoder(), TextEncoder(len(vocabulary()))


def make_tokenizer(max_length: int):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.enable_padding(length=max_length, pad_id=0, pad_token="[PAD]")
    tok.enable_truncation(max_length)
    return tok


def _pixels(crops: np.ndarray):
    import torch

    x = crops[..., ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(((x - 0.5) / 0.5).transpose(0, 3, 1, 2)))


def _augment(crops: np.ndarray, attrs: np.ndarray, rng: np.random.Generator):
    crops, attrs = crops.copy(), attrs.copy()
    flip = rng.random(len(crops)) < 0.5
    crops[flip] = crops[flip, :, ::-1]
    turn = flip & (attrs[:, 2] >= 0)
    attrs[turn, 2] = 1 - attrs[turn, 2]
    gain = rng.uniform(0.75, 1.25, (len(crops), 1, 1, 1))
    shift = rng.uniform(-20, 20, (len(crops), 1, 1, 1))
    crops = np.clip(crops.astype(np.float32) * gain + shift, 0, 255).astype(np.uint8)
    return crops, attrs


def train(cfg: TextImageConfig, run_dir: Path, output: Path | None,
          progress: bool = True) -> dict:
    import torch
    from torch import nn
    from tqdm import tqdm

    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    data_path = run_dir / f"train_crops_{cfg.train_worlds}x{cfg.frames_per_world}.npz"
    if data_path.is_file():
        data = CropSet.load(data_path)
    else:
        data = _mixed_presets(cfg, rng, progress)
        data.save(data_path)
    assert not data.held_out.any()
    real = None
    if cfg.real_pseudo:
        real_path = run_dir / "real_crops.npz"
        if real_path.is_file():
            real = CropSet.load(real_path)
        else:
            from models.training.train import train_clips

            real = real_crops(train_clips(Path(cfg.real_pseudo)), cfg.image_size, cfg.context,
                              rng, jitter=cfg.jitter, jpeg=True, progress=progress)
            real.save(real_path)
        known = int((real.attrs[:, 1] >= 0).sum())
        print(f"real crops: {len(real.crops)} ({known} with a colour read)")
    print(f"training on {len(data.crops)} synthetic crops")
    image_net, text_net = build_nets(cfg)
    scale = nn.Parameter(torch.tensor(math.log(10.0)))
    bias = nn.Parameter(torch.tensor(-5.0))
    params = [*image_net.parameters(), *text_net.parameters(), scale, bias]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    tok = make_tokenizer(cfg.max_length)
    history, ema, t0 = [], None, time.time()
    bar = tqdm(range(cfg.steps), desc="textimage", unit="step", disable=not progress,
               mininterval=5)
    for step in bar:
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * 0.5 * (
            1 + math.cos(math.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        n_real = round(cfg.batch * cfg.real_share) if real is not None else 0
        idx = rng.integers(0, len(data.crops), cfg.batch - n_real)
        crops, attrs = data.crops[idx], data.attrs[idx]
        if n_real:
            ridx = rng.integers(0, len(real.crops), n_real)
            crops = np.concatenate([crops, real.crops[ridx]])
            attrs = np.concatenate([attrs, real.attrs[ridx]])
        crops, attrs = _augment(crops, attrs, rng)
        caps = [caption(*a, rng) for a in attrs.tolist()]
        enc = tok.encode_batch([c for c, _ in caps])
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc])
        labels, weights = (torch.from_numpy(t) for t in targets(
            attrs, np.asarray([c for _, c in caps])))
        img = image_net(_pixels(crops))
        txt = text_net(ids, mask)
        logits = scale.exp() * img @ txt.T + bias
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, labels, weight=weights, reduction="sum") / cfg.batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            scale.clamp_(0.0, math.log(100.0))
        value = float(loss.detach())
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        history.append(round(value, 4))
        bar.set_postfix(loss=f"{ema:.3f}", scale=f"{float(scale.exp()):.1f}",
                        bias=f"{float(bias):.1f}", lr=f"{lr:.1e}")
    torch.save({"image": image_net.state_dict(), "text": text_net.state_dict(),
                "scale": float(scale.exp()), "bias": float(bias), "config": asdict(cfg),
                "history": history}, run_dir / "last.pt")
    summary = {"steps": cfg.steps, "crops": len(data.crops),
               "real_crops": 0 if real is None else len(real.crops), "final_loss_ema": ema,
               "scale": float(scale.exp()), "bias": float(bias),
               "seconds": round(time.time() - t0)}
    if output is not None:
        export(image_net, text_net, tok, cfg, float(scale.exp()), float(bias), output)
        summary["output"] = str(output)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _mixed_presets(cfg: TextImageConfig, rng: np.random.Generator, progress: bool) -> CropSet:
    seeds = rng.choice(np.asarray(TRAIN_SEEDS), cfg.train_worlds, replace=False).tolist()
    parts = []
    for k, preset in enumerate(cfg.presets):
        chunk = seeds[k::len(cfg.presets)]
        parts.append(make_crops(chunk, [preset], cfg.frames_per_world, cfg.image_size,
                                cfg.context, rng, jitter=cfg.jitter, jpeg=True,
                                include_held_out=False, progress=progress))
    return CropSet(np.concatenate([p.crops for p in parts]),
                   np.concatenate([p.attrs for p in parts]),
                   np.concatenate([p.held_out for p in parts]))


def export(image_net, text_net, tok, cfg: TextImageConfig, scale: float, bias: float,
           folder: Path) -> Path:
    """image_encoder.onnx (pixel_values -> image_embeds), text_encoder.onnx (input_ids,
    attention_mask -> text_embeds), tokenizer.json and textimage.json into `folder`."""
    import torch

    from cloud_fallback.textimage import CONFIG_NAME

    folder.mkdir(parents=True, exist_ok=True)
    image_net.eval()
    text_net.eval()
    s = cfg.image_size
    with torch.no_grad():
        torch.onnx.export(image_net, (torch.zeros(1, 3, s, s),),
                          str(folder / "image_encoder.onnx"), opset_version=17, dynamo=False,
                          input_names=["pixel_values"], output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "batch"},
                                        "image_embeds": {0: "batch"}})
        ids = torch.zeros(1, cfg.max_length, dtype=torch.int64)
        torch.onnx.export(text_net, (ids, torch.ones_like(ids)),
                          str(folder / "text_encoder.onnx"), opset_version=17, dynamo=False,
                          input_names=["input_ids", "attention_mask"],
                          output_names=["text_embeds"],
                          dynamic_axes={"input_ids": {0: "batch"},
                                        "attention_mask": {0: "batch"},
                                        "text_embeds": {0: "batch"}})
    tok.save(str(folder / "tokenizer.json"))
    spec = {"name": "osprey-textimage", "image_size": s, "mean": [0.5] * 3, "std": [0.5] * 3,
            "context": cfg.context, "max_length": cfg.max_length, "pad_id": 0,
            "scale": round(scale, 4), "bias": round(bias, 4), "prompt": PROMPT}
    (folder / CONFIG_NAME).write_text(json.dumps(spec, indent=2) + "\n")
    return folder


# evaluation ----------------------------------------------------------------------------------


def evaluate(model_dir: Path, seeds=EVAL_SEEDS, presets=("normal", "hard"),
             frames_per_world: int = 40, seed: int = 1, jitter: float = 0.06) -> dict:
    """Top-1 retrieval of the right "a {colour} {class}" caption among all of them for crops
    of held-out worlds, seen and held-out combinations apart, plus class-prompt accuracy."""
    from cloud_fallback.textimage import TextImageModel

    model = TextImageModel.load(model_dir)
    rng = np.random.default_rng(seed)
    data = make_crops(list(seeds), list(presets), frames_per_world, model.spec.image_size,
                      model.spec.context, rng, jitter=jitter, jpeg=True, max_occlusion=0.3)
    pairs = [(c, k) for k in range(len(CLASSES)) for c in range(len(WORLD_COLOURS))]
    texts = [f"a {COLOUR_NAMES[c]} {CLASSES[k]}" for c, k in pairs]
    emb = np.concatenate([model.encode_crops(data.crops[i:i + 512])
                          for i in range(0, len(data.crops), 512)])
    best = np.argmax(emb @ model.encode_texts(texts).T, axis=1)
    truth = np.array([pairs.index((c, k)) for k, c, _ in data.attrs.tolist()])
    right = best == truth
    cls_right = model.class_distribution(emb, CLASSES).argmax(1) == data.attrs[:, 0]
    out = {"crops": len(right), "captions": len(texts), "chance": round(1 / len(texts), 4)}
    for name, sel in (("seen", ~data.held_out), ("held_out", data.held_out)):
        out[name] = {"crops": int(sel.sum()), "top1": round(float(right[sel].mean()), 4),
                     "class_top1": round(float(cls_right[sel].mean()), 4)}
    out["held_out_by_combo"] = {
        f"{COLOUR_NAMES[c]} {CLASSES[k]}": round(float(right[
            (data.attrs[:, 0] == k) & (data.attrs[:, 1] == c)].mean()), 4)
        for c, k in sorted((COLOUR_NAMES.index(a), CLASSES.index(b)) for a, b in HELD_OUT)}
    return out


def evaluate_real(model_dir: Path, pseudo: Path, seed: int = 1) -> dict:
    """Real crops of the held-out clips (never trained on): for each crop whose colour the
    colour reader names, top-1 of its caption "a {colour} {class}" among the captions of
    every colour and class present; and the class alone among the classes present. The
    truth's colour is the reader's (79 % right on the sample checked by eye)."""
    from cloud_fallback.textimage import TextImageModel
    from models.training.validate_real import held_out

    model = TextImageModel.load(model_dir)
    rng = np.random.default_rng(seed)
    data = real_crops(held_out(pseudo), model.spec.image_size, model.spec.context, rng)
    known = data.attrs[:, 1] >= 0
    attrs, crops = data.attrs[known], data.crops[known]
    classes = sorted({int(k) for k in attrs[:, 0]})
    colours = sorted({int(c) for c in attrs[:, 1]})
    pairs = [(c, k) for k in classes for c in colours]
    texts = [f"a {COLOUR_NAMES[c]} {ALL_CLASSES[k]}" for c, k in pairs]
    emb = np.concatenate([model.encode_crops(crops[i:i + 512])
                          for i in range(0, len(crops), 512)])
    best = np.argmax(emb @ model.encode_texts(texts).T, axis=1)
    truth = np.array([pairs.index((c, k)) for k, c, _ in attrs.tolist()])
    right = best == truth
    names = tuple(ALL_CLASSES[k] for k in classes)
    all_emb = np.concatenate([model.encode_crops(data.crops[i:i + 512])
                              for i in range(0, len(data.crops), 512)])
    cls_pred = np.array(classes)[model.class_distribution(all_emb, names).argmax(1)]
    cls_right = cls_pred == data.attrs[:, 0]
    colour_right = np.array([pairs[b][0] for b in best]) == attrs[:, 1]
    return {
        "crops": len(data.crops), "with_colour": int(known.sum()), "captions": len(texts),
        "chance": round(1 / len(texts), 4), "top1": round(float(right.mean()), 4),
        "colour_top1": round(float(colour_right.mean()), 4),
        "class_top1": round(float(cls_right.mean()), 4),
        "by_class": {ALL_CLASSES[k]: {"crops": int((attrs[:, 0] == k).sum()),
                                      "top1": round(float(right[attrs[:, 0] == k].mean()), 4)}
                     for k in classes},
        "by_colour": {COLOUR_NAMES[c]: {"crops": int((attrs[:, 1] == c).sum()),
                                        "top1": round(float(right[attrs[:, 1] == c].mean()),
                                                      4)}
                      for c in colours}}


def main() -> None:
    ap = argparse.ArgumentParser(description="Osprey's image-text model: train, evaluate")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train and export")
    t.add_argument("--run-dir", type=Path, required=True)
    t.add_argument("--output", type=Path, default=Path("models/textimage"))
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--real", default=None, metavar="PSEUDO_DIR",
                   help="the teacher's labels of the real clips (e.g. runs/pseudo): crops of "
                        "the MANIFEST's train clips join the synthetic ones")
    e = sub.add_parser("eval", help="retrieval on held-out worlds")
    e.add_argument("--model", type=Path, default=Path("models/textimage"))
    e.add_argument("--frames", type=int, default=40, help="frames per world")
    e.add_argument("--real", type=Path, default=None, metavar="PSEUDO_DIR",
                   help="also on real crops of the held-out clips, labelled in PSEUDO_DIR")
    args = ap.parse_args()
    if args.cmd == "train":
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        cfg = TextImageConfig(**({"steps": args.steps} if args.steps else {}),
                              real_pseudo=args.real)
        print(json.dumps(train(cfg, args.run_dir, args.output), indent=2))
    else:
        out = {"synthetic": evaluate(args.model, frames_per_world=args.frames)}
        if args.real is not None:
            out["real"] = evaluate_real(args.model, args.real)
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
