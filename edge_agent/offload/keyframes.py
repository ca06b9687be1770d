"""Few, good keyframes of a window: the most uncertain and sharpest frames, spread out."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.window import WindowFrame, WindowSummary


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image at a quarter size (blur lowers it)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2),
                       interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_32F).var())


def frame_uncertainty(frame: WindowFrame, band: tuple[float, float]) -> float:
    s = frame.detections.score
    low, high = band
    return float(((s >= low) & (s < high)).sum()) + 0.1 * len(s)


def pick(uncertainty: np.ndarray, sharp: np.ndarray, k: int) -> list[int]:
    """Indices of up to `k` frames in time order: ranked by uncertainty, then sharpness,
    taking at most one frame from each of k equal slices so the keyframes span the window."""
    n = len(uncertainty)
    if n <= k:
        return list(range(n))
    rank = uncertainty / (uncertainty.max() or 1.0) + 0.5 * sharp / (sharp.max() or 1.0)
    slices = np.array_split(np.arange(n), k)
    return sorted(int(s[np.argmax(rank[s])]) for s in slices if len(s))


def select_keyframes(summary: WindowSummary, k: int, band: tuple[float, float]
                     ) -> list[WindowFrame]:
    frames = list(summary.frames)
    if len(frames) <= k:
        return frames
    unc = np.array([frame_uncertainty(f, band) for f in frames])
    sharp = np.array([sharpness(f.frame.image) for f in frames])
    return [frames[i] for i in pick(unc, sharp, k)]


def encode_jpeg(image: np.ndarray, max_side: int, quality: int) -> bytes:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (round(w * scale), round(h * scale)),
                           interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()
