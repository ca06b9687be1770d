"""The image-text model interface (cloud_fallback/textimage.py) without torch: the shipped
model, a CLIP-style pair built here (BPE tokenizer with start/end tokens, 224x224 input, CLIP's
normalisation, other tensor names), and the errors for broken folders."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cloud_fallback.textimage import TextImageModel, letterbox_crop
from edge_agent.core.bundled import bundled_text_model
from edge_agent.core.errors import ModelError
from edge_agent.tools.sim import SyntheticWorld, WorldOptions

pytest.importorskip("tokenizers", reason="the image-text model needs `tokenizers` "
                    "(pip install '.[cloud]')")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _normalised(bgr) -> np.ndarray:
    rgb = np.asarray(bgr[::-1], np.float32) / 255
    return (rgb - CLIP_MEAN) / CLIP_STD


def mean_colour_encoder(axes=(2, 3), width: int = 3):
    """An image encoder graph: the mean of a 224x224 input over `axes` (`width` wide)."""
    return helper.make_graph(
        [helper.make_node("ReduceMean", ["pixel_values"], ["image_embeds"], axes=list(axes),
                          keepdims=0)],
        "image", [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT,
                                                ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", width])])


def save_graph(graph, path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def clip_style_folder(tmp_path, unk: str = "<|unk|>"):
    """Image encoder: mean colour (normalised RGB) of a 224x224 input. Text encoder: sum of
    a per-token table (colour words point at their colour's normalised RGB). Tokenizer: a BPE
    trained here, with <|startoftext|> and <|endoftext|> around every text, as CLIP's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=unk, end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    trainer = trainers.BpeTrainer(vocab_size=300, end_of_word_suffix="</w>", special_tokens=[
        "<|endoftext|>", "<|startoftext|>", "<|unk|>"])
    tok.train_from_iterator(["a red box", "a blue box", "a photo of a red car",
                             "a blue car", "the red one", "the blue one"] * 20, trainer)
    bos, eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)])
    tok.save(str(tmp_path / "tokenizer.json"))
    table = np.zeros((tok.get_vocab_size(), 3), np.float32)
    for word, bgr in (("red", (0, 0, 255)), ("blue", (255, 0, 0))):
        ids = tok.encode(word, add_special_tokens=False).ids
        assert len(ids) == 1, f"{word} must be one token"
        table[ids[0]] = _normalised(bgr)

    txt = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["g"]),
         helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
         helper.make_node("Unsqueeze", ["m", "axis"], ["m3"]),
         helper.make_node("Mul", ["g", "m3"], ["gm"]),
         helper.make_node("ReduceSum", ["gm", "one"], ["text_embeds"], keepdims=0)],
        "text", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", 77]),
                 helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", 77])],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["b", 3])],
        [numpy_helper.from_array(table, "table"),
         numpy_helper.from_array(np.array([-1], np.int64), "axis"),
         numpy_helper.from_array(np.array([1], np.int64), "one")])
    save_graph(mean_colour_encoder(), tmp_path / "visual.onnx")
    save_graph(txt, tmp_path / "textual.onnx")
    (tmp_path / "textimage.json").write_text(json.dumps({
        "image_encoder": "visual.onnx", "text_encoder": "textual.onnx", "image_size": 224,
        "mean": CLIP_MEAN, "std": CLIP_STD, "max_length": 77, "pad_id": eos,
        "scale": 100.0, "bias": -90.0, "prompt": "a photo of a {label}", "name": "tiny-clip"}))
    return tmp_path


def test_a_clip_style_pair_loads_and_reads_colours(tmp_path):
    model = TextImageModel.load(clip_style_folder(tmp_path))
    assert model.name == "tiny-clip"
    frame = np.full((120, 200, 3), 90, np.uint8)
    frame[20:60, 20:80] = (0, 0, 255)  # a red box, BGR
    frame[70:110, 120:180] = (255, 0, 0)  # a blue box
    crops = model.crops(frame, np.array([[20, 20, 80, 60], [120, 70, 180, 110]], np.float32))
    assert crops.shape == (2, 224, 224, 3)
    emb = model.encode_crops(crops)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    texts = model.encode_texts(["a red box", "a blue box"])
    sim = emb @ texts.T
    assert sim[0, 0] > sim[0, 1] and sim[1, 1] > sim[1, 0]
    p = model.match_probability(emb, texts)
    assert p[0, 0] > 0.5 > p[0, 1] and p[1, 1] > 0.5 > p[1, 0]
    # The tokenizer pads to the model's length with its own ids; embeddings are cached.
    enc = model.tokenizer.encode("a red box")
    assert len(enc.ids) == 77 and enc.tokens[0] == "<|startoftext|>"
    assert "a red box" in model._text_cache


def test_the_shipped_model_tells_a_red_car_from_a_yellow_dog():
    model = TextImageModel.load(bundled_text_model())
    world = SyntheticWorld(WorldOptions.from_preset("easy", seed=1003))
    found = {}
    for index in range(0, 30 * 120, 30):
        rendered, truth = world.render(index)
        for o in truth.visible():
            if o.visible_px > 400 and o.occlusion < 0.1 and o.truncation == 0:
                found.setdefault((o.colour, o.cls), (rendered.image, o.box))
    assert len(found) >= 6, "the world shows too few distinct objects for this check"
    keys = sorted(found)
    emb = model.encode_crops(np.stack([model.crops(img, np.array([box], np.float32))[0]
                                       for img, box in (found[k] for k in keys)]))
    texts = [f"a {colour} {cls}" for colour, cls in keys]
    best = (emb @ model.encode_texts(texts).T).argmax(axis=1)
    assert (best == np.arange(len(keys))).mean() >= 0.8
    probs = model.match_probability(emb, model.encode_texts(texts))
    assert (np.diag(probs) > 0.5).mean() >= 0.8
    off_diagonal = probs[~np.eye(len(keys), dtype=bool)]
    assert (off_diagonal < 0.5).mean() >= 0.95
    dist = model.class_distribution(emb, ("person", "car", "truck", "cyclist", "dog"))
    assert np.allclose(dist.sum(axis=1), 1, atol=1e-5)


def test_letterbox_keeps_the_shape_and_pads_outside_the_frame():
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[40:60, 10:90] = 255  # a wide white bar
    crop = letterbox_crop(frame, (10, 40, 90, 60), 48, context=0.0)
    rows = np.flatnonzero(crop[:, 24, 0] > 128)
    assert 10 <= len(rows) <= 14, "a 4:1 box fills a quarter of the square's height"
    corner = letterbox_crop(frame, (-20, -20, 10, 10), 32, context=0.0, fill=114)
    assert (corner[:10, :10] == 114).all()


@pytest.mark.parametrize("broken,message", [
    ("no_config", "textimage.json"),
    ("no_tokenizer", "tokenizer"),
    ("bad_key", "unknown keys"),
    ("wrong_inputs", "input_ids"),
    ("bad_tokenizer", "not a tokenizers tokenizer.json"),
    ("mismatched", "do not share an embedding space: the image encoder gives \\(224,\\), "
                   "the text encoder \\(3,\\)"),
])
def test_broken_model_folders_say_what_is_wrong(tmp_path, broken, message):
    folder = clip_style_folder(tmp_path)
    if broken == "no_config":
        (folder / "textimage.json").unlink()
    elif broken == "no_tokenizer":
        (folder / "tokenizer.json").unlink()
    elif broken == "bad_tokenizer":
        (folder / "tokenizer.json").write_text("{not json")
    elif broken == "mismatched":  # an image head of another width than the text's
        save_graph(mean_colour_encoder(axes=(1, 3), width=224), folder / "visual.onnx")
    elif broken == "bad_key":
        spec = json.loads((folder / "textimage.json").read_text())
        (folder / "textimage.json").write_text(json.dumps({**spec, "image_sise": 3}))
    else:
        spec = json.loads((folder / "textimage.json").read_text())
        (folder / "textimage.json").write_text(json.dumps({**spec,
                                                           "text_encoder": "visual.onnx"}))
    with pytest.raises(ModelError, match=message):
        TextImageModel.load(folder)


def test_a_missing_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        TextImageModel.load(tmp_path / "nope")


@pytest.mark.parametrize("wanted, available, expected", [
    (["auto"], ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
     ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["auto"], ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    (["tensorrt", "cpu"], ["TensorrtExecutionProvider", "CPUExecutionProvider"],
     ["CPUExecutionProvider"]),
    (["cuda"], ["CUDAExecutionProvider", "CPUExecutionProvider"],
     ["CUDAExecutionProvider", "CPUExecutionProvider"]),
])
def test_the_text_model_runs_where_the_detector_does_but_never_on_tensorrt(wanted, available,
                                                                          expected):
    from cloud_fallback.textimage import text_model_providers

    assert text_model_providers(wanted, available) == expected


def test_unknown_words_when_the_unknown_token_also_ends_every_text(tmp_path):
    """CLIP's tokenizer.json names <|endoftext|> as its unknown token, and adds it after every
    text: a word is unknown only if it reads as that token by itself."""
    model = TextImageModel.load(clip_style_folder(tmp_path, unk="<|endoftext|>"))
    assert model.read_query("a red box") == ("a red box", [])
    assert model.read_query("a xyzzy box")[1] == ["xyzzy"]


def test_a_query_matches_one_object_once_under_its_best_label():
    """A detector that answers one car three times (car, dog, cyclist: class-wise NMS keeps
    such duplicates): the recipe keeps the best-supported box, and "red car" matches it once;
    a person on a bicycle keeps both boxes."""
    from cloud_fallback.opinion import TextOpinion
    from cloud_fallback.recipe import Keyframes, Recipe, refine
    from edge_agent.core.detector.detections import Detections

    names = ("person", "car", "truck", "cyclist", "dog", "bicycle")
    world = SyntheticWorld(WorldOptions.from_preset("easy", seed=1003))
    car = None
    for index in range(0, 30 * 120, 30):
        rendered, truth = world.render(index)
        car = next((o for o in truth.visible() if o.cls == "car" and o.colour == "red"
                    and o.visible_px > 400 and o.occlusion < 0.1 and o.truncation == 0), None)
        if car is not None:
            break
    assert car is not None, "the world shows no clear red car"
    x0, y0, x1, y1 = car.box
    shifted = [x0 + 2, y0 + 1, x1 + 1, y1 - 1]
    rider = [100, 100, 140, 200]
    bike = [98, 140, 142, 205]
    dets = Detections(np.array([car.box, shifted, car.box, rider, bike], np.float32),
                      np.array([0.9, 0.5, 0.4, 0.8, 0.7], np.float32),
                      np.array([1, 4, 3, 0, 5], np.int32), names)
    model = TextImageModel.load(bundled_text_model())
    opinion = TextOpinion(model, names, 0.0, 0.5, 8, 32)
    image = rendered.image
    [answer], matches = refine(
        [dets], Recipe(fuse=False, min_score=0.2), opinion=opinion,
        keyframes=Keyframes(images=[image], indices=[index], scales=[(1.0, 1.0)]),
        queries=["red car"])
    labels = sorted(names[c] for c in answer.class_id)
    assert labels == ["bicycle", "car", "person"], labels
    red = [m for m in matches if m.query == "red car"]
    assert len(red) == 1 and red[0].label == "car"
    assert red[0].box == [round(float(v), 1) for v in np.array(car.box, np.float32)]
