"""The cloud's image-text model: crops and text in one embedding space, on ONNX Runtime.

A model is a folder with an image encoder, a text encoder (both ONNX), the Hugging Face
`tokenizer.json` the text encoder was trained with, and `textimage.json` saying how to feed
them (input size, normalisation, token length, calibration). The shipped model is Osprey's
own (models/textimage/); a CLIP-style pair exported from PyTorch loads the same way (see
docs/models.md). No torch here: ONNX Runtime and the `tokenizers` library only.

Two readings of a similarity `s` between a crop and a text:
- match probability `sigmoid(scale * s + bias)`: is this text true of this crop? (queries)
- class distribution `softmax(scale * s)` over class prompts: which class is it? (labels)
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_agent.core.errors import ModelError

CONFIG_NAME = "textimage.json"


@dataclass(frozen=True)
class TextImageSpec:
    """What `textimage.json` holds."""

    image_encoder: str = "image_encoder.onnx"
    text_encoder: str = "text_encoder.onnx"
    tokenizer: str = "tokenizer.json"
    image_size: int = 48
    """Square input side; crops are letterboxed to it."""
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """RGB, on pixels scaled to 0..1."""
    context: float = 0.15
    """Share of the box's size added on each side before cropping."""
    max_length: int = 16
    pad_id: int = 0
    scale: float = 10.0
    bias: float = -5.0
    prompt: str = "a {label}"
    """Class prompt template for the second opinion on labels."""
    name: str = ""

    @classmethod
    def load(cls, path: Path) -> TextImageSpec:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"{path} is missing: an image-text model folder needs "
                             f"{CONFIG_NAME} next to its encoders (see docs/models.md)") from None
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path} is not valid JSON: {exc}") from None
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ModelError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
        for key in ("mean", "std"):
            if key in raw:
                raw[key] = tuple(float(v) for v in raw[key])
        return cls(**raw)


def text_model_providers(wanted: list[str], available: list[str]) -> list[str]:
    """ONNX Runtime providers for the image-text encoders: the detector's (`model.runtime.
    providers`) without TensorRT, whose engines and INT8 settings are the detector's
    business; CUDA where asked for and present, the CPU always last."""
    from edge_agent.core.detector.backends.onnxruntime import resolve_providers

    return [p for p in resolve_providers(wanted, available, "fp32", Path("."))
            if isinstance(p, str) and p != "TensorrtExecutionProvider"]


def letterbox_crop(image: np.ndarray, box, size: int, context: float = 0.15,
                   fill: int = 114) -> np.ndarray:
    """The box plus `context` of its size on each side, scaled to fit a size x size square
    without distortion and centred on grey (the same for training and serving)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    x1, x2 = x1 - context * bw, x2 + context * bw
    y1, y2 = y1 - context * bh, y2 + context * bh
    side = max(x2 - x1, y2 - y1)
    scale = size / side
    # One affine warp crops, scales and pads (outside the frame is grey too).
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    m = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]],
                 np.float32)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, m, (size, size), flags=interp,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(fill, fill, fill))


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


@dataclass
class TextImageModel:
    """Encoders of one image-text model folder; text embeddings are cached (queries and
    prompts repeat for every window)."""

    folder: Path
    spec: TextImageSpec
    image_session: object
    text_session: object
    tokenizer: object
    _text_cache: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)
    _queries: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    _unk: int | None = None
    """The tokenizer's unknown-token id (None: it has none), read at load."""

    @classmethod
    def load(cls, folder: str | Path, providers: list[str] | None = None) -> TextImageModel:
        import onnxruntime as ort

        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ModelError("the image-text model needs the `tokenizers` package: "
                             "pip install 'osprey[cloud]'") from None
        folder = Path(folder)
        if not folder.is_dir():
            raise ModelError(f"image-text model folder {folder} does not exist")
        spec = TextImageSpec.load(folder / CONFIG_NAME)
        paths = {k: folder / getattr(spec, k)
                 for k in ("image_encoder", "text_encoder", "tokenizer")}
        for key, path in paths.items():
            if not path.is_file():
                raise ModelError(f"{path} is missing ({key} of the image-text model in "
                                 f"{folder})")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        providers = providers or ["CPUExecutionProvider"]
        try:
            image = ort.InferenceSession(str(paths["image_encoder"]), opts, providers=providers)
            text = ort.InferenceSession(str(paths["text_encoder"]), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"image-text encoders in {folder} do not load: {exc}") from None
        try:
            tok = Tokenizer.from_file(str(paths["tokenizer"]))
        except Exception as exc:  # tokenizers raises a plain Exception on a bad file
            raise ModelError(f"{paths['tokenizer']} is not a tokenizers tokenizer.json: "
                             f"{exc}") from None
        tok.enable_padding(length=spec.max_length, pad_id=spec.pad_id)
        tok.enable_truncation(spec.max_length)
        unk_token = json.loads(tok.to_str()).get("model", {}).get("unk_token")
        model = cls(folder, spec, image, text, tok,
                    _unk=tok.token_to_id(unk_token) if unk_token else None)
        model._check_inputs()
        model._check_embeddings()
        return model

    def _check_embeddings(self) -> None:
        """Both encoders run, and into one space: a pair exported with mismatched heads
        would otherwise fail on every request."""
        s = self.spec.image_size
        try:
            img = self.encode_crops(np.full((1, s, s, 3), 114, np.uint8))
            txt = self.encode_texts([self.spec.prompt.format(label="object")])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"the image-text encoders in {self.folder} do not run on a "
                             f"{s}x{s} crop and a text: {exc}") from None
        if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1]:
            raise ModelError(f"the image-text encoders in {self.folder} do not share an "
                             f"embedding space: the image encoder gives {img.shape[1:]}, "
                             f"the text encoder {txt.shape[1:]}")

    def _check_inputs(self) -> None:
        img = self.image_session.get_inputs()
        if len(img) != 1 or len(img[0].shape) != 4:
            raise ModelError(f"the image encoder must take one NCHW image input, it takes "
                             f"{[(i.name, i.shape) for i in img]}")
        names = [i.name for i in self.text_session.get_inputs()]
        if "input_ids" not in names or not set(names) <= {"input_ids", "attention_mask"}:
            raise ModelError(f"the text encoder must take input_ids (and optionally "
                             f"attention_mask), it takes {names}")

    @property
    def name(self) -> str:
        return self.spec.name or self.folder.name

    # encoders ------------------------------------------------------------------------------

    def crops(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Letterboxed crops (n, size, size, 3) BGR of `boxes` (n, 4) in `image`."""
        s = self.spec.image_size
        if not len(boxes):
            return np.zeros((0, s, s, 3), np.uint8)
        return np.stack([letterbox_crop(image, b, s, self.spec.context) for b in boxes])

    def encode_crops(self, crops: np.ndarray) -> np.ndarray:
        """Unit embeddings (n, d) of BGR crops (n, size, size, 3)."""
        if not len(crops):
            return np.zeros((0, 0), np.float32)
        x = crops[..., ::-1].astype(np.float32) / 255.0
        x = (x - np.asarray(self.spec.mean, np.float32)) / np.asarray(self.spec.std, np.float32)
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        inp = self.image_session.get_inputs()[0].name
        out = self.image_session.run(None, {inp: x})[0]
        return _normalise(out.astype(np.float32))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Unit embeddings (n, d) of texts; each text is encoded once per process."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if todo:
            enc = self.tokenizer.encode_batch(todo)
            feed = {"input_ids": np.array([e.ids for e in enc], np.int64)}
            if any(i.name == "attention_mask" for i in self.text_session.get_inputs()):
                feed["attention_mask"] = np.array([e.attention_mask for e in enc], np.int64)
            out = _normalise(self.text_session.run(None, feed)[0].astype(np.float32))
            for t, v in zip(todo, out, strict=True):
                self._text_cache[t] = v
                if len(self._text_cache) > 4096:
                    self._text_cache.popitem(last=False)
        return np.stack([self._text_cache[t] for t in texts]) if texts else \
            np.zeros((0, 0), np.float32)

    def read_query(self, text: str) -> tuple[str, list[str]]:
        """`text` as the model will read it, and the words of it the tokenizer does not know
        (they would read as [UNK], which the model ignores: "a crimson car" would match
        every car). A plural whose singular is known reads as the singular ("red cars" as
        "red car"). A tokenizer without an unknown token (CLIP's byte-level BPE) knows every
        word."""
        if text in self._queries:
            return self._queries[text]
        unk = self._unk
        words, unknown = text.split(), []
        if unk is not None:
            for i, word in enumerate(words):
                if not self._unknown(word, unk):
                    continue
                singular = word[:-1] if len(word) > 3 and word.lower().endswith("s") else ""
                if singular and not self._unknown(singular, unk):
                    words[i] = singular
                else:
                    unknown.append(word)
        out = (" ".join(words), unknown)
        if len(self._queries) > 4096:  # queries come from every device: keep it bounded
            self._queries.clear()
        self._queries[text] = out
        return out

    def _unknown(self, word: str, unk: int) -> bool:
        # Without the special tokens a tokenizer adds around every text: CLIP's unknown token
        # is also its end-of-text token.
        enc = self.tokenizer.encode(word, add_special_tokens=False)
        return any(i == unk for i, m in zip(enc.ids, enc.attention_mask, strict=True) if m)

    # readings ------------------------------------------------------------------------------

    def match_probability(self, image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
        """(n_images, n_texts) probability that each text is true of each crop."""
        logits = self.spec.scale * (image_emb @ text_emb.T) + self.spec.bias
        return 0.5 * (1.0 + np.tanh(0.5 * logits))  # the logistic, without overflow

    def class_distribution(self, image_emb: np.ndarray,
                           labels: tuple[str, ...]) -> np.ndarray:
        """(n_images, n_labels) softmax over the class prompts of `labels`."""
        text = self.encode_texts([self.spec.prompt.format(label=lb) for lb in labels])
        logits = self.spec.scale * (image_emb @ text.T)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)
