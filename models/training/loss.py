"""SSD multibox loss: IoU matching with forced best anchors, hard negative mining, smooth L1."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from models.training.nets import cxcywh_to_xyxy, encode

POS_IOU, NEG_IOU = 0.5, 0.4
NEG_PER_POS = 3


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def match(anchors: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: class target (0 background, -1 ignore) and its matched box (xyxy).

    `labels` holds 1-based classes, negative for boxes to ignore (barely visible objects):
    anchors that overlap those are neither positive nor negative."""
    n = anchors.shape[0]
    target = torch.zeros(n, dtype=torch.long)
    matched = torch.zeros(n, 4)
    if boxes.numel() == 0:
        return target, matched
    iou = box_iou(cxcywh_to_xyxy(anchors), boxes)
    best_iou, best_gt = iou.max(1)
    real = labels > 0
    if real.any():
        forced = iou[:, real].argmax(0)
        real_idx = torch.nonzero(real).flatten()
        best_gt[forced] = real_idx
        best_iou[forced] = 1.0
    target = torch.where(best_iou >= POS_IOU, labels[best_gt], torch.zeros_like(best_gt))
    target[(best_iou >= NEG_IOU) & (best_iou < POS_IOU)] = -1
    target[target < 0] = -1
    matched = boxes[best_gt]
    return target, matched


def multibox_loss(logits: torch.Tensor, reg: torch.Tensor, anchors: torch.Tensor,
                  targets: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, dict]:
    cls_t, box_t = zip(*(match(anchors, b, lab) for b, lab in targets), strict=True)
    cls_t = torch.stack(cls_t)
    box_t = torch.stack(box_t)
    pos = cls_t > 0
    num_pos = pos.sum().clamp(min=1).float()
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), cls_t.clamp(min=0).reshape(-1),
                         reduction="none").view_as(cls_t)
    with torch.no_grad():
        neg_loss = ce.clone()
        neg_loss[cls_t != 0] = 0.0
        rank = neg_loss.argsort(1, descending=True).argsort(1)
        n_neg = (pos.sum(1, keepdim=True) * NEG_PER_POS).clamp(min=8)
        neg = (rank < n_neg) & (cls_t == 0)
    cls_loss = ce[pos | neg].sum() / num_pos
    loc = F.smooth_l1_loss(reg[pos], encode(box_t[pos], anchors.expand_as(box_t)[pos]),
                           reduction="sum", beta=1 / 9) / num_pos
    return cls_loss + loc, {"cls": float(cls_loss.detach()), "loc": float(loc.detach()),
                            "pos": float(num_pos) / len(targets)}
