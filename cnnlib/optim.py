"""Optimisers, learning-rate schedules, Lookahead and losses, by name."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# The batch-norm layers whose shift (bias) `norm_bias_lr_factor` applies to.
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def make_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 0.0,
    decay_norms_and_biases: bool = False,
    norm_bias_lr_factor: float = 1.0,
) -> torch.optim.Optimizer:
    """The optimiser ``name`` over the parameters that require gradients. Weight decay skips norms
    and biases (one-dimensional parameters) unless ``decay_norms_and_biases`` is set (Goyal et al.
    2017, Sec. 5).

    ``norm_bias_lr_factor`` other than 1 puts the batch-norm biases in a parameter group of their own
    whose learning rate is the others' times the factor (its ``lr_factor``, which :func:`set_lr` keeps)
    and whose weight decay is divided by it, so that the decay per step, lr × weight decay, stays the
    others' (Jordan 2024, arXiv 2404.00498, §3.4: airbench raises the biases' rate 64-fold and not their
    decay). At 1 the groups are today's two, so optimiser states saved before the setting existed
    still load."""
    params = [p for p in model.parameters() if p.requires_grad]
    norm_biases: list[nn.Parameter] = []
    if norm_bias_lr_factor != 1:
        norm_biases = [
            m.bias
            for m in model.modules()
            if isinstance(m, BATCH_NORMS) and m.bias is not None and m.bias.requires_grad
        ]
        grouped = {id(bias) for bias in norm_biases}
        params = [p for p in params if id(p) not in grouped]
    decayed = params if decay_norms_and_biases else [p for p in params if p.ndim > 1]
    exempt = [] if decay_norms_and_biases else [p for p in params if p.ndim <= 1]
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}]
    if norm_biases:
        bias_decay = weight_decay / norm_bias_lr_factor if decay_norms_and_biases else 0.0
        groups.append(
            {
                "params": norm_biases,
                "weight_decay": bias_decay,
                "lr": lr * norm_bias_lr_factor,
                "lr_factor": norm_bias_lr_factor,
            }
        )
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "nadam":
        return torch.optim.NAdam(groups, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr)
    return torch.optim.RMSprop(groups, lr=lr, momentum=momentum)


class Lookahead:
    """Lookahead (Zhang et al. 2019, arXiv 1907.08610, Alg. 1) as airbench schedules it (Jordan 2024,
    arXiv 2404.00498, §3.7): a second, slow copy of the weights. Every :attr:`PERIOD` steps of the
    optimiser the slow weights move towards the trained (fast) ones, ``slow += (1 - decay)(fast - slow)``,
    and the fast weights restart from them. The decay rises with the run's progress ``p`` (0 to 1) as
    ``0.95⁵ · p³``: early on the slow weights follow the fast ones, late they average over the last few
    dozen steps. At the end (:meth:`finish`) the network takes the slow weights. Batch norm's running
    statistics are averaged as the weights are (airbench does so too)."""

    PERIOD = 5
    FINAL_DECAY = 0.95**5

    def __init__(self, model: nn.Module):
        self.slow = {
            name: value.detach().clone()
            for name, value in model.state_dict().items()
            if value.is_floating_point()
        }

    @torch.no_grad()
    def update(self, model: nn.Module, progress: float, decay: float | None = None) -> None:
        """Move the slow weights towards ``model``'s by ``1 - decay`` (by default the decay of
        ``progress``, the fraction of the run done) and set ``model``'s to them."""
        decay = self.FINAL_DECAY * min(1.0, progress) ** 3 if decay is None else decay
        fast = model.state_dict()
        for name, slow in self.slow.items():
            slow.lerp_(fast[name], 1 - decay)
            fast[name].copy_(slow)

    def finish(self, model: nn.Module) -> None:
        """Give ``model`` the slow weights, as the run's result."""
        self.update(model, 1.0, decay=1.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The slow weights, for a checkpoint."""
        return dict(self.slow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from the slow weights of a checkpoint."""
        for name, slow in self.slow.items():
            slow.copy_(state[name])


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr`` times the group's ``lr_factor`` (1 where
    it has none; see :func:`make_optimizer`)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_factor", 1.0)


def lr_factor(
    schedule: str, warmup: float, total_steps: int, warmup_from: float = 0.0, anneal_to: float = 0.0
) -> Callable[[float], float]:
    """The learning-rate multiplier at each step: a linear warm-up over the first
    ``warmup`` fraction of the run from ``warmup_from`` of the peak, then constant (``none``), ×0.1 at
    50 % and 75 % (``step``), a cosine (``cosine``, Loshchilov & Hutter 2017) or a linear ramp
    (``onecycle``, Smith & Topin 2019) down to ``anneal_to`` of the peak at the last step. airbench94's
    schedule is the one-cycle from 0.2 through 1 to 0.07 (Jordan 2024, its code's ``get_lr``)."""
    warm = int(warmup * total_steps)

    def factor(step: float) -> float:
        if step < warm:
            return warmup_from + (1 - warmup_from) * (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        if schedule == "step":
            return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
        if schedule == "cosine":
            return anneal_to + (1 - anneal_to) * 0.5 * (1 + math.cos(math.pi * progress))
        if schedule == "onecycle":
            return anneal_to + (1 - anneal_to) * (1 - progress)
        return 1.0

    return factor


def schedule_position(steps: int, seconds: float, total_steps: int, time_budget: float | None) -> float:
    """Where a run stands in its schedule, in steps (the argument of :func:`lr_factor`'s factor):
    the steps done or, under a time budget, the fraction of the budget spent times the total
    steps, whichever is further along, so that the schedule ends when either runs out."""
    return max(float(steps), seconds / time_budget * total_steps) if time_budget else float(steps)


class ProbabilityMSE(nn.Module):
    """The squared error between the softmax probabilities and the (smoothed) one-hot
    target, summed over classes: the Brier score (Brier 1950), a bounded alternative to
    cross-entropy."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        classes = logits.shape[1]
        one_hot = (
            F.one_hot(target, classes).float() * (1 - self.label_smoothing) + self.label_smoothing / classes
        )
        return (logits.float().softmax(1) - one_hot).pow(2).sum(1).mean()


def make_criterion(loss: str, label_smoothing: float = 0.0) -> nn.Module:
    """The training loss by name: softmax cross-entropy (with ``label_smoothing``, Szegedy
    et al. 2016, Sec. 7), ``mse`` (:class:`ProbabilityMSE`) or ``hinge``, the multi-class
    margin loss of Weston & Watkins 1999 (``nn.MultiMarginLoss``)."""
    if loss == "mse":
        return ProbabilityMSE(label_smoothing)
    if loss == "hinge":
        return nn.MultiMarginLoss()
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def loss_and_logits(
    output: torch.Tensor | tuple, target: torch.Tensor, criterion: nn.Module, aux_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of a model's output; auxiliary heads (GoogLeNet, Szegedy et al. Sec. 5)
    add their losses times ``aux_weight``."""
    if isinstance(output, tuple):
        logits, *aux = output
        return criterion(logits, target) + aux_weight * sum(criterion(a, target) for a in aux), logits
    return criterion(output, target), output
