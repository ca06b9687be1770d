"""The pictures of docs/real/: a frame of each clip beside `../shared/data/real/clips/`, the
synthetic-world edge model's boxes above (red) and the real-camera model's below (green), at
score 0.4.

    python scripts/draw_real.py [--frame vehicle_survaillance=60 ...] [--out docs/real]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edge_agent.core.config.common import DetectorModelConfig
from edge_agent.core.detector import Detector
from edge_agent.tools.teacher import REAL_DATA

REPO = Path(__file__).resolve().parents[1]
FRAMES = {"vehicle_survaillance": 60, "pedestrian_survaillance": 120, "intel_car-detection": 30}


def draw(image: np.ndarray, det: Detector, colour: tuple[int, int, int], title: str,
         width: int) -> np.ndarray:
    out = det(image)
    canvas = image.copy()
    for i in range(len(out)):
        x1, y1, x2, y2 = (round(float(v)) for v in out.xyxy[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        cv2.putText(canvas, f"{out.label(i)} {out.score[i]:.2f}", (x1, max(12, y1 - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    cv2.putText(canvas, title, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2, cv2.LINE_AA)
    scale = width / canvas.shape[1]
    return cv2.resize(canvas, (width, round(canvas.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", action="append", default=[], metavar="CLIP=INDEX")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "real")
    ap.add_argument("--width", type=int, default=480)
    args = ap.parse_args()
    frames = dict(FRAMES)
    for item in args.frame:
        clip, _, index = item.partition("=")
        frames[clip] = int(index)
    synthetic = Detector.from_config(DetectorModelConfig(
        path=REPO / "models/edge/osprey_edge_ssdlite.onnx", score_threshold=0.4))
    real = Detector.from_config(DetectorModelConfig(
        path=REPO / "models/edge/osprey_edge_real.onnx", score_threshold=0.4))
    args.out.mkdir(parents=True, exist_ok=True)
    for clip, index in frames.items():
        cap = cv2.VideoCapture(str(REAL_DATA / f"{clip}.mp4"))
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = cap.read()
        cap.release()
        if not ok:
            raise SystemExit(f"{clip}: no frame {index}")
        top = draw(image, synthetic, (40, 40, 230), "synthetic-world model (before)",
                   args.width)
        bottom = draw(image, real, (60, 200, 60), "real-camera model", args.width)
        path = args.out / f"{clip}.jpg"
        cv2.imwrite(str(path), np.vstack([top, bottom]), [cv2.IMWRITE_JPEG_QUALITY, 85])
        print(f"wrote {path} (frame {index})")


if __name__ == "__main__":
    main()
