"""MobileNetV2 backbone, a light FPN, SSDLite heads, anchors and box coding (PyTorch).

Dev-time code: the agent never imports torch; it runs the ONNX export of `ExportWrapper`,
which puts softmax and box decoding in the graph so the file has the jetson-inference SSD
layout (`scores` [1,N,C+1], `boxes` [1,N,4] normalised corners).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


def _div8(v: float) -> int:
    return max(8, int(v + 4) // 8 * 8)


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
                   ConvBNAct(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    """Returns features at strides 8, 16 and 32."""

    CFG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        cin = _div8(32 * width)
        self.stem = ConvBNAct(3, cin, 3, 2)
        stages: list[nn.Module] = []
        self.taps: list[int] = []
        self.channels: list[int] = []
        for t, c, n, s in self.CFG:
            cout = _div8(c * width)
            for i in range(n):
                stages.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
            if c in (32, 96, 320):
                self.taps.append(len(stages) - 1)
                self.channels.append(cout)
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.taps:
                out.append(x)
        return out


class SSDLite(nn.Module):
    """MobileNetV2 + a top-down FPN over strides 8-64 + SSDLite (depthwise) heads."""

    def __init__(self, num_classes: int, width: float, fpn: int, anchors_per_cell: int) -> None:
        super().__init__()
        self.backbone = MobileNetV2(width)
        c8, c16, c32 = self.backbone.channels
        self.lateral = nn.ModuleList([ConvBNAct(c, fpn, 1) for c in (c8, c16, c32)])
        self.extra = InvertedResidual(fpn, fpn, 2, 4)  # stride 64
        self.smooth = nn.ModuleList([ConvBNAct(fpn, fpn, 3, groups=fpn) for _ in range(3)])
        a, k = anchors_per_cell, num_classes + 1
        self.cls_heads = nn.ModuleList([self._head(fpn, a * k) for _ in range(4)])
        self.box_heads = nn.ModuleList([self._head(fpn, a * 4) for _ in range(4)])
        self.num_classes = num_classes
        prior = math.log(0.99 * num_classes / 0.01)  # start with background likely
        for head in self.cls_heads:
            bias = head[-1].bias.data.view(a, k)
            bias.zero_()
            bias[:, 0] = prior

    @staticmethod
    def _head(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(ConvBNAct(cin, cin, 3, groups=cin), nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f8, f16, f32 = (lat(f) for lat, f in zip(self.lateral, self.backbone(x), strict=True))
        f16 = f16 + nn.functional.interpolate(f32, size=f16.shape[-2:], mode="nearest")
        f8 = f8 + nn.functional.interpolate(f16, size=f8.shape[-2:], mode="nearest")
        feats = [s(f) for s, f in zip(self.smooth, (f8, f16, f32), strict=True)]
        feats.append(self.extra(feats[-1]))
        b = x.shape[0]
        k = self.num_classes + 1
        cls = [h(f).permute(0, 2, 3, 1).reshape(b, -1, k)
               for h, f in zip(self.cls_heads, feats, strict=True)]
        box = [h(f).permute(0, 2, 3, 1).reshape(b, -1, 4)
               for h, f in zip(self.box_heads, feats, strict=True)]
        return torch.cat(cls, 1), torch.cat(box, 1)


STRIDES = (8, 16, 32, 64)
RATIOS = (0.35, 1.0, 2.6)
VARIANCES = (0.1, 0.2)


@dataclass(frozen=True)
class AnchorSpec:
    """Anchor sizes (pixels of the model input) per stride; each size takes every ratio."""

    sizes: tuple[tuple[float, ...], ...] = ((10, 20), (30, 46), (64, 100), (150, 230))

    @property
    def per_cell(self) -> int:
        return len(self.sizes[0]) * len(RATIOS)

    def scaled(self, factor: float) -> AnchorSpec:
        return AnchorSpec(tuple(tuple(s * factor for s in level) for level in self.sizes))


def make_anchors(width: int, height: int, spec: AnchorSpec) -> torch.Tensor:
    """(N, 4) anchors as normalised cx, cy, w, h, in the order the heads emit them."""
    out = []
    for stride, sizes in zip(STRIDES, spec.sizes, strict=True):
        fw, fh = math.ceil(width / stride), math.ceil(height / stride)
        ys, xs = torch.meshgrid(torch.arange(fh), torch.arange(fw), indexing="ij")
        cx = ((xs.flatten() + 0.5) * stride / width)[:, None]
        cy = ((ys.flatten() + 0.5) * stride / height)[:, None]
        wh = torch.tensor([[s * math.sqrt(r) / width, s / math.sqrt(r) / height]
                           for s in sizes for r in RATIOS])
        n = cx.shape[0]
        out.append(torch.cat([cx.expand(n, len(wh))[..., None], cy.expand(n, len(wh))[..., None],
                              wh[None].expand(n, -1, -1)], -1).reshape(-1, 4))
    return torch.cat(out).float()


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def encode(gt_xyxy: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    wh = (gt_xyxy[..., 2:] - gt_xyxy[..., :2]).clamp(min=1e-6)
    c = (gt_xyxy[..., :2] + gt_xyxy[..., 2:]) / 2
    return torch.cat([(c - anchors[..., :2]) / (anchors[..., 2:] * VARIANCES[0]),
                      torch.log(wh / anchors[..., 2:]) / VARIANCES[1]], -1)


def decode(reg: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    c = anchors[..., :2] + reg[..., :2] * VARIANCES[0] * anchors[..., 2:]
    wh = anchors[..., 2:] * torch.exp(reg[..., 2:].clamp(max=6.0) * VARIANCES[1])
    return cxcywh_to_xyxy(torch.cat([c, wh], -1))


class ExportWrapper(nn.Module):
    """Model + softmax + box decoding: the graph Osprey ships (jetson-inference SSD layout).
    Input is RGB normalised as (x/255 - 0.5)/0.5, NCHW."""

    def __init__(self, model: SSDLite, anchors: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("anchors", anchors[None])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, reg = self.model(x)
        return torch.softmax(logits, -1), decode(reg, self.anchors).clamp(0.0, 1.0)
