"""Exponential moving average of the denoiser's parameters (the weights CoD exports and evaluates)."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor


class ExponentialMovingAverage:
    """
    `shadow <- decay * shadow + (1 - decay) * parameter` after every optimiser step, kept in float32.

    With `warmup`, the decay of the `t`-th update is `min(decay, (1 + t) / (10 + t))`, so that a short run's
    average forgets the random initialisation (with 0.999 and no warm-up, 67 % of it is still there after 400 steps).

    The average covers the named parameters of `module`, under the same names, so its state dict loads into a
    fresh copy of the module. Its state is nothing but the shadow tensors, which makes resuming exact. Under FSDP2
    the parameters are sharded `DTensor`s; each process then averages its own shards, and [`state_dict`] gathers
    the full tensors (so every process must call it).

    Parameters:
        module (`nn.Module`): the module to follow (its parameters are read at every [`update`]).
        decay (`float`): the decay per step (0.9999 in the release).
        warmup (`bool`): ramp the decay up from 0.1 over the first updates (see above).
    """

    def __init__(self, module: nn.Module, decay: float, warmup: bool = False):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.parameters = dict(module.named_parameters())
        self.shadow = {name: value.detach().float().clone() for name, value in self.parameters.items()}

    def decay_at(self, update: int) -> float:
        """The decay of the `update`-th update (counted from 1)."""
        return min(self.decay, (1 + update) / (10 + update)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, update: int) -> None:
        """Moves every shadow tensor toward its parameter, `shadow += (1 - decay) * (parameter - shadow)`, with the
        decay of the `update`-th update (the optimiser step just taken, counted from 1)."""
        shadows = list(self.shadow.values())
        current = [self.parameters[name].detach().float() for name in self.shadow]
        torch._foreach_lerp_(shadows, current, 1.0 - self.decay_at(update))

    @torch.no_grad()
    def copy_to_frozen_parameters(self) -> None:
        """Sets every parameter that is not trained (`requires_grad` off) to its shadow, so that the model trains
        around the values the average holds, and exports."""
        for name, parameter in self.parameters.items():
            if not parameter.requires_grad:
                parameter.copy_(self.shadow[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The full shadow tensors (float32, on their device); a collective call when they are sharded."""
        return {
            name: value.full_tensor() if isinstance(value, DTensor) else value for name, value in self.shadow.items()
        }

    def load_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True) -> list[str]:
        """Copies shadow tensors in; returns the names missing from `state_dict` (an error when `strict`)."""
        unexpected = sorted(set(state_dict) - set(self.shadow))
        missing = sorted(set(self.shadow) - set(state_dict))
        if strict and (unexpected or missing):
            raise ValueError(f"EMA state mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for name, value in state_dict.items():
            if name not in self.shadow:
                continue
            if value.shape != self.shadow[name].shape:
                raise ValueError(
                    f"EMA tensor {name} has shape {tuple(value.shape)}, expected {tuple(self.shadow[name].shape)}"
                )
            shadow = self.shadow[name]
            if isinstance(shadow, DTensor):
                value = distribute_tensor(value.to(shadow.device), shadow.device_mesh, shadow.placements)
            shadow.copy_(value)
        return missing
