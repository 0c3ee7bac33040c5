"""The training losses: the structure loss's weighting and its agreement with BCE + IoU."""

import pytest
import torch

from sod_train.model.config import LOSSES
from sod_train.model.losses import boundary_weights, saliency_loss, structure_loss


def _square(n: int = 64, lo: int = 16, hi: int = 48) -> torch.Tensor:
    mask = torch.zeros(1, 1, n, n)
    mask[..., lo:hi, lo:hi] = 1
    return mask


def test_boundary_weights_are_one_far_from_edges_and_up_to_six_on_them():
    w = boundary_weights(_square())
    assert w[0, 0, 32, 32] == pytest.approx(1.0)  # deep inside the object
    assert w[0, 0, 2, 2] == pytest.approx(1.0)  # deep in the background
    assert 1.5 < w[0, 0, 16, 32] <= 6.0  # on the object's edge
    assert w[0, 0, 16, 32] > w[0, 0, 18, 32] > w[0, 0, 32, 32]  # falls off inwards


def test_an_error_on_the_boundary_costs_more_than_the_same_error_inside():
    mask = _square()
    perfect = mask * 20 - 10
    edge, inside = perfect.clone(), perfect.clone()
    edge[..., 16, 30] = 10 - 20 * mask[..., 16, 30]  # one wrong pixel on the edge
    inside[..., 32, 32] = -10  # one wrong pixel deep inside
    assert structure_loss(edge, mask) > structure_loss(inside, mask) > structure_loss(perfect, mask)


def test_structure_loss_is_near_zero_when_right_and_high_when_inverted():
    mask = _square()
    assert structure_loss(mask * 20 - 10, mask).item() < 1e-3
    assert structure_loss(10 - mask * 20, mask).item() > 5


def test_structure_loss_with_flat_weights_is_bce_plus_soft_iou():
    """Where no pixel is near an edge the weights are 1, and the loss is BCE + soft IoU."""
    mask = torch.ones(2, 1, 16, 16)
    logits = torch.randn(2, 1, 16, 16)
    assert torch.allclose(
        saliency_loss(logits, mask, "structure", per_image=True),
        saliency_loss(logits, mask, "bce+iou", per_image=True),
        atol=1e-6,
    )


@pytest.mark.parametrize("kind", LOSSES)
def test_every_loss_has_gradients_and_one_value_per_image(kind):
    logits = torch.randn(3, 1, 20, 24, requires_grad=True)
    target = (torch.rand(3, 1, 20, 24) > 0.5).float()
    per_image = saliency_loss(logits, target, kind, per_image=True)
    assert per_image.shape == (3,)
    per_image.mean().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_structure_weights_also_work_on_tiny_side_outputs():
    """Deep supervision scores 5x5 side outputs; the window shrinks with them."""
    mask = torch.zeros(1, 1, 5, 5)
    mask[..., 1:4, 1:4] = 1
    w = boundary_weights(mask)
    assert w.shape == mask.shape and torch.isfinite(w).all() and w.max() > 1


@pytest.mark.parametrize("hw", [(1, 1), (1, 2), (2, 1), (7, 13)])
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_structure_loss_is_finite_on_flat_masks_and_one_pixel_side_outputs(hw, fill):
    """An empty (or full) mask and the 1x1 side output of a tiny crop: finite loss and
    gradients, weights all 1 (nothing differs from its neighbourhood)."""
    target = torch.full((2, 1, *hw), fill)
    logits = torch.randn(2, 1, *hw, requires_grad=True)
    assert torch.equal(boundary_weights(target), torch.ones_like(target))
    loss = structure_loss(logits, target)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()


def test_an_object_touching_the_border_is_not_weighted_along_it():
    """The local mean counts only pixels inside the picture (no zero padding)."""
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :, :32] = 1  # the left half, touching the top, bottom and left borders
    w = boundary_weights(mask)
    assert w[0, 0, 0, 4] == pytest.approx(1.0) and w[0, 0, 32, 0] == pytest.approx(1.0)
    assert w[0, 0, 32, 31] > 2  # the object's own edge still is
