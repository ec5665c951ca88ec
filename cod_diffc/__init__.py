"""cod_diffc: CoD as diffusers components, and the DiffC zero-shot codec on Stable Diffusion or CoD."""

__version__ = "0.1.0.dev0"
