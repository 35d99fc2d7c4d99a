"""Training callbacks shared by every domain."""

from __future__ import annotations

import lightning as L
import torch


class EMA(L.Callback):
    """Exponential moving average of the network's floating-point parameters and buffers.

    The average is used for validation (swapped in, then out) and for export (``copy_to``); it is
    saved in Lightning checkpoints, so a resumed run keeps it. The decay warms up as
    min(decay, (1 + s) / (10 + s)) at step s, so a short run's average is not mostly the initial
    weights (with 0.999 flat they would still weigh 0.999^2000 = 14% after 2,000 steps).
    """

    def __init__(self, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay={decay} must lie in (0, 1)")
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {}
        self._backup: dict[str, torch.Tensor] = {}

    @staticmethod
    def _tensors(pl_module) -> dict[str, torch.Tensor]:
        return {k: v for k, v in pl_module.net.state_dict().items() if v.is_floating_point()}

    def on_fit_start(self, trainer, pl_module):
        current = self._tensors(pl_module)
        if not self.shadow:
            self.shadow = {k: v.detach().clone() for k, v in current.items()}
        else:  # restored from a checkpoint
            self.shadow = {k: self.shadow[k].to(v.device) for k, v in current.items()}

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        decay = self.decay_at(trainer.global_step)
        for k, v in self._tensors(pl_module).items():
            self.shadow[k].lerp_(v.detach(), 1.0 - decay)

    def _swap_in(self, pl_module):
        if self.shadow:
            self._backup = {k: v.detach().clone() for k, v in self._tensors(pl_module).items()}
            self.copy_to(pl_module.net)

    def _swap_out(self, pl_module):
        if self._backup:
            pl_module.net.load_state_dict(self._backup, strict=False)
            self._backup = {}

    def on_validation_start(self, trainer, pl_module):
        self._swap_in(pl_module)

    def on_validation_end(self, trainer, pl_module):
        self._swap_out(pl_module)

    @torch.no_grad()
    def copy_to(self, net: torch.nn.Module) -> None:
        net.load_state_dict(self.shadow, strict=False)

    def state_dict(self):
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state_dict):
        self.decay = state_dict["decay"]
        self.shadow = state_dict["shadow"]


class AttentionAnnealing(L.Callback):
    """AR-to-diffusion adaptation (DiffuLLaMA): over the first ``steps`` training steps the network's
    attention goes from causal to full, by setting ``net.future_visibility`` (the probability that a
    query sees a given later key) to step / steps; from then on, and after training, it is 1."""

    def __init__(self, steps: int):
        from zoo.checks import check_int

        self.steps = check_int("anneal_attention_steps", steps, low=1)

    def on_fit_start(self, trainer, pl_module):
        if not hasattr(pl_module.net, "future_visibility"):
            raise ValueError(f"anneal_attention_steps: {type(pl_module.net).__name__} has no future_visibility "
                             f"to anneal")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        pl_module.net.future_visibility = min(1.0, trainer.global_step / self.steps)

    def on_fit_end(self, trainer, pl_module):
        pl_module.net.future_visibility = 1.0
