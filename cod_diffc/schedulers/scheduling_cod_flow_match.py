"""The CoD sampler: second-order Adams–Bashforth on CoD's rectified-flow time grid.

Time convention
---------------
Everything public in this project uses diffusers' flow-matching convention: the noise level ``sigma`` runs from 1
(pure noise) to 0 (data), ``x_sigma = (1 - sigma) * x0 + sigma * noise`` and the model predicts the velocity
``v = noise - x0``. The released CoD runs the other way (``t = 1 - sigma``, ``v_cod = x0 - noise``); the single place
that converts is :meth:`cod_diffc.models.transformer_cod.CodTransformer2DModel.forward`. This scheduler only builds
the released grid, which is defined in CoD's time, and hands out the matching ``sigma`` values.
"""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput


@dataclass
class CodFlowMatchSchedulerOutput(BaseOutput):
    """
    Output of [`CodFlowMatchScheduler.step`].

    Args:
        prev_sample (`torch.Tensor` of shape `(batch_size, num_channels, height, width)`):
            The sample at the next (lower) noise level.
    """

    prev_sample: torch.Tensor


class CodFlowMatchScheduler(SchedulerMixin, ConfigMixin):
    """
    The sampler of CoD ([arXiv 2511.18706](https://arxiv.org/abs/2511.18706)): a linear multistep (Adams–Bashforth)
    solver of the rectified-flow ODE on the released time grid.

    In CoD's time the network is evaluated at ``t_i`` for ``i < N`` on ``linspace(0, 1 - last_step_size, N)``
    followed by ``1.0``; step ``i`` moves by ``dt_i = t_{i+1} - t_i`` with ``a_i * v_{i-1} + b_i * v_i``, the
    integral over ``[t_i, t_{i+1}]`` of the line through the last two velocities (step 0 is an Euler step). With one
    step the sampler is the closed-form one-step decode ``x0 = noise - v(noise, sigma=1)``, CoD's highest-PSNR
    setting. The velocity history holds what the pipeline passes to :meth:`step`, i.e. the guided velocities, as in
    the release.

    As in the released sampler, the grid and the step sizes are float32 numbers, and the noise level passed to the
    network is ``1 - t`` where ``t`` is the running float32 sum of the step sizes (it differs from the grid by a few
    float32 ulps). The multistep weights are the exact ones for that grid (the release integrates them in float32,
    which differs by < 1e-6).

    Parameters:
        last_step_size (`float`, *optional*, defaults to 0.04):
            Length, in CoD time, of the final step that reaches the data (the release's ``last_step``).
        solver_order (`int`, *optional*, defaults to 2):
            1 for Euler, 2 for second-order Adams–Bashforth (the released default).
    """

    _compatibles: list[str] = []
    order = 1

    @classmethod
    def _get_compatibles(cls) -> list[type]:
        """This class and the diffusers schedulers named in `_compatibles` (diffusers looks names up in its own package
        only, so a scheduler outside it would not list itself)."""
        return [cls, *super()._get_compatibles()]

    @register_to_config
    def __init__(self, last_step_size: float = 0.04, solver_order: int = 2):
        if not 0.0 < last_step_size < 1.0:
            raise ValueError(f"last_step_size must lie in (0, 1), got {last_step_size}")
        if solver_order not in (1, 2):
            raise ValueError(f"solver_order must be 1 (Euler) or 2 (Adams–Bashforth), got {solver_order}")
        self.num_inference_steps: int | None = None
        self.timesteps = torch.empty(0, dtype=torch.float64)
        self.sigmas = torch.empty(0, dtype=torch.float64)
        self._step_sizes = torch.empty(0, dtype=torch.float64)
        self._step_index: int | None = None
        self._previous_velocity: torch.Tensor | None = None

    @property
    def step_index(self) -> int | None:
        """Index of the next step to take, or `None` before the first call to [`step`]."""
        return self._step_index

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """
        Builds the grid for `num_inference_steps` network evaluations and resets the solver history.

        Args:
            num_inference_steps (`int`): number of steps (network evaluations), at least 1.
            device (`str` or `torch.device`, *optional*): where to put `timesteps` and `sigmas`.

        After the call, `timesteps` (shape `(N,)`) holds the noise level to feed the network at each step, and
        `sigmas` (shape `(N + 1,)`) the grid from 1 (noise) to 0 (data), both float64.
        """
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        n = num_inference_steps
        # 1. CoD's grid, in float32 as the release computes it: t = 0 is noise, t = 1 is data.
        grid = torch.cat(
            [torch.linspace(0.0, 1.0 - self.config.last_step_size, n, dtype=torch.float32), torch.ones(1)]
        )
        step_sizes = grid[1:] - grid[:-1]  # (N,) float32
        network_t = torch.cat([torch.zeros(1), torch.cumsum(step_sizes, 0, dtype=torch.float32)[:-1]])
        # 2. The one conversion of this file: sigma = 1 - t (exact in float64 for float32 t).
        self.sigmas = (1.0 - grid.double()).to(device)
        self.timesteps = (1.0 - network_t.double()).to(device)
        self._step_sizes = step_sizes.double()
        self.num_inference_steps = n
        self._step_index = None
        self._previous_velocity = None

    def multistep_coefficients(self, step_index: int) -> tuple[float, float]:
        """Weights `(a, b)` of the previous and current velocity in step `step_index` (`(0, 1)` for Euler)."""
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps() before asking for multistep coefficients")
        if self.config.solver_order == 1 or step_index == 0:
            return 0.0, 1.0
        step = float(self._step_sizes[step_index])
        previous_step = float(self._step_sizes[step_index - 1])
        a = -step / (2.0 * previous_step)
        return a, 1.0 - a

    def step(
        self,
        model_output: torch.Tensor,
        timestep: float | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> CodFlowMatchSchedulerOutput | tuple[torch.Tensor]:
        """
        Moves `sample` from `sigmas[i]` to `sigmas[i + 1]`.

        Args:
            model_output (`torch.Tensor`): velocity `noise - x0` predicted at `sample` (guided, if guidance is used).
            timestep (`float` or `torch.Tensor`): the noise level the network was given (`timesteps[i]`); kept for
                the diffusers signature, the solver follows its own step counter.
            sample (`torch.Tensor`): the current sample `x_sigma`.
            generator (`torch.Generator`, *optional*): unused, the sampler is deterministic.
            return_dict (`bool`, *optional*, defaults to `True`): return a dataclass instead of a tuple.
        """
        if self.num_inference_steps is None:
            raise ValueError("call set_timesteps() before step()")
        if model_output.shape != sample.shape:
            raise ValueError(f"model_output shape {tuple(model_output.shape)} != sample shape {tuple(sample.shape)}")
        index = 0 if self._step_index is None else self._step_index
        if index >= self.num_inference_steps:
            raise ValueError(f"all {self.num_inference_steps} steps are done; call set_timesteps() to start again")

        a, b = self.multistep_coefficients(index)
        velocity = model_output if a == 0.0 else a * self._previous_velocity + b * model_output
        # sigma decreases by the CoD step size: x_{sigma - dt} = x_sigma - dt * v.
        prev_sample = sample - self._step_sizes[index].item() * velocity

        self._previous_velocity = model_output
        self._step_index = index + 1
        if not return_dict:
            return (prev_sample,)
        return CodFlowMatchSchedulerOutput(prev_sample=prev_sample)

    def scale_noise(self, sample: torch.Tensor, timestep: float | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """
        The forward process: `(1 - sigma) * sample + sigma * noise`, with `timestep` the noise level `sigma` in
        [0, 1] (a float, or a tensor broadcastable over the batch dimension).
        """
        sigma = torch.as_tensor(timestep, dtype=sample.dtype, device=sample.device)
        if sigma.min() < 0 or sigma.max() > 1:
            raise ValueError(f"timestep (noise level sigma) must lie in [0, 1], got {timestep}")
        sigma = sigma.reshape(-1, *([1] * (sample.ndim - 1))) if sigma.ndim else sigma
        return (1.0 - sigma) * sample + sigma * noise
