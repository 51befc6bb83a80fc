"""Loss terms: the mask loss reads the class channel; empty inputs give connected zeros."""

from __future__ import annotations

import torch

from medseg.models.maskrcnn.losses import (
    box_regression_loss,
    classification_loss,
    mask_loss,
    objectness_loss,
)


def test_mask_loss_uses_the_channel_of_each_rois_class() -> None:
    targets = (torch.rand(2, 6, 6) > 0.5).float()
    logits = torch.randn(2, 3, 6, 6) * 5  # wrong everywhere but in the class channels below
    logits[0, 2] = (targets[0] * 2 - 1) * 50
    logits[1, 1] = (targets[1] * 2 - 1) * 50
    assert float(mask_loss(logits, torch.tensor([2, 1]), targets)) < 1e-6
    assert float(mask_loss(logits, torch.tensor([1, 2]), targets)) > 0.5


def test_box_regression_loss_is_normalised_by_all_samples() -> None:
    deltas = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    loss = box_regression_loss(deltas, torch.zeros(1, 4), normalizer=4)
    torch.testing.assert_close(loss, torch.tensor((1.0 - 0.5 / 9.0) / 4))


def test_empty_inputs_give_connected_zeros() -> None:
    weight = torch.ones(3, requires_grad=True)
    empty = torch.zeros(0, 3) * weight  # a prediction that depends on a parameter
    losses = [
        objectness_loss(empty[:, 0], torch.zeros(0)),
        box_regression_loss(empty, torch.zeros(0, 3), normalizer=0),
        classification_loss(empty, torch.zeros(0, dtype=torch.long)),
        mask_loss(empty[:, :, None], torch.zeros(0, dtype=torch.long), torch.zeros(0, 1)),
    ]
    for loss in losses:
        assert float(loss.detach()) == 0.0 and loss.requires_grad
    sum(losses).backward()
    assert weight.grad is not None and float(weight.grad.abs().sum()) == 0.0
