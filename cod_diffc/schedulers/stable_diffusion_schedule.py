"""Stable Diffusion 1.x's training schedule, as `diffusers.DDPMScheduler` arguments: what `ldm` models are trained
with (`cod-diffc train`, `model.kind: ldm`) and what the `gaussian-vp` backbone serves its oracle on."""

STABLE_DIFFUSION_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "prediction_type": "epsilon",
    "clip_sample": False,
}
"""1,000 steps, scaled-linear betas from 0.00085 to 0.012, epsilon prediction."""
