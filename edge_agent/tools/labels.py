"""Human labels of real video for `edge-agent eval`: MOT Challenge `gt.txt` and COCO JSON, read
into the ground-truth format the evaluation scores (edge_agent.tools.sim.truth).

- **MOT** (`gt.txt`: frame, id, left, top, width, height, conf, class, visibility; frames
  1-based): rows with `conf` 0 and classes the class map leaves out are ignore regions (MOT's
  distractors, static people, reflections). Boxes are scaled to the video's frame by `scale`
  (labels made at another resolution than the video).
- **COCO JSON**: the i-th image in `file_name` order is the i-th frame of the video, unless
  images carry a `frame_id` or `frame_index`; `iscrowd` annotations are ignore regions.

A class map renames the labels' classes to the model's (`pedestrian=person`); classes it does
not name keep their own name.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

from edge_agent.core.errors import OspreyError
from edge_agent.tools.sim.truth import FrameTruth, ObjectTruth, SceneInfo

MOT_CLASSES = {1: "pedestrian", 2: "person_on_vehicle", 3: "car", 4: "bicycle", 5: "motorbike",
               6: "non_motorized_vehicle", 7: "static_person", 8: "distractor", 9: "occluder",
               10: "occluder_on_ground", 11: "occluder_full", 12: "reflection", 13: "crowd"}
"""MOT Challenge (MOT16/17/20) class ids."""


def parse_class_map(text: str | None) -> dict[str, str]:
    """`a=b,c=d` -> {a: b, c: d}; ValueError naming the bad part."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        src, sep, dst = part.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"class map entry {part!r}: write it as label=model_class, e.g. "
                             "pedestrian=person")
        out[src.strip()] = dst.strip()
    return out


def _object(cls: str, box: tuple[float, float, float, float], ignore: bool,
            classes: tuple[str, ...]) -> ObjectTruth:
    x1, y1, x2, y2 = box
    return ObjectTruth(track_id=-1, cls=cls, colour="unknown", size="unknown", state="unknown",
                       facing="unknown", box=box, full_box=box,
                       visible_px=int(max(0.0, x2 - x1) * max(0.0, y2 - y1)), occlusion=0.0,
                       truncation=0.0, ignore=ignore,
                       label_id=classes.index(cls) if cls in classes else None)


def _frames(objects: dict[int, list[ObjectTruth]], fps: float, name: str
            ) -> dict[int, FrameTruth]:
    return {k: FrameTruth(frame=k, t=k / fps, scene=SceneInfo(0, name, "fresh"), light=1.0,
                          objects=tuple(objs)) for k, objs in sorted(objects.items())}


def read_mot(path: Path, classes: tuple[str, ...], class_map: dict[str, str],
             scale: float = 1.0, fps: float = 30.0) -> dict[int, FrameTruth]:
    """MOT `gt.txt` -> truth per 0-based frame index (every frame from the first to the last
    labelled one, so frames with nobody in them count too)."""
    objects: dict[int, list[ObjectTruth]] = defaultdict(list)
    last = -1
    with Path(path).open(newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or not row[0].strip():
                continue
            try:
                frame, _, left, top, w, h = (float(v) for v in row[:6])
                conf = float(row[6]) if len(row) > 6 else 1.0
                cid = int(float(row[7])) if len(row) > 7 else 1
            except ValueError:
                raise OspreyError(f"{path}:{n}: not a MOT row (frame, id, left, top, width, "
                                  f"height, conf, class, visibility): {','.join(row)[:80]}") \
                    from None
            k = int(frame) - 1
            last = max(last, k)
            name = class_map.get(MOT_CLASSES.get(cid, str(cid)), MOT_CLASSES.get(cid, str(cid)))
            box = (left * scale, top * scale, (left + w) * scale, (top + h) * scale)
            objects[k].append(_object(name, box, conf == 0 or name not in classes, classes))
    for k in range(last + 1):
        objects.setdefault(k, [])
    return _frames(objects, fps, Path(path).parent.name)


def read_coco(path: Path, classes: tuple[str, ...], class_map: dict[str, str],
              scale: float = 1.0, fps: float = 30.0) -> dict[int, FrameTruth]:
    """COCO JSON -> truth per frame index (see the module's note on frame order)."""
    data = json.loads(Path(path).read_text())
    try:
        images, anns, cats = data["images"], data["annotations"], data["categories"]
    except KeyError as exc:
        raise OspreyError(f"{path} is not COCO JSON (no {exc.args[0]!r})") from None
    names = {c["id"]: class_map.get(c["name"], c["name"]) for c in cats}
    order = sorted(images, key=lambda im: im.get("file_name", str(im["id"])))
    frame_of = {im["id"]: int(im.get("frame_id", im.get("frame_index", i)))
                for i, im in enumerate(order)}
    objects: dict[int, list[ObjectTruth]] = {k: [] for k in frame_of.values()}
    for a in anns:
        x, y, w, h = (v * scale for v in a["bbox"])
        name = names.get(a["category_id"], str(a["category_id"]))
        objects[frame_of[a["image_id"]]].append(
            _object(name, (x, y, x + w, y + h), bool(a.get("iscrowd")) or name not in classes,
                    classes))
    return _frames(objects, fps, Path(path).stem)


def manifest_split(manifest: Path) -> dict[str, str]:
    """Clip stem -> `train` or `validate`, from the clips' MANIFEST.md table."""
    out = {}
    for line in manifest.read_text().splitlines():
        m = re.match(r"\|\s*([\w.-]+\.(?:mp4|avi|mkv|mov))\s*\|\s*(train|validate)\s*\|", line)
        if m:
            out[Path(m.group(1)).stem] = m.group(2)
    return out
