"""Largest deviation from the official CoD, per stored output of the reference folder's tiny checkpoints.

Each `tiny_<variant>_state_dict.safetensors` of the reference folder (`$COD_DIFFC_REFERENCE_DIR`, by default
`../shared/reference/cod_official` beside the checkout) is converted with `cod-diffc convert` (the latent variants with
a tiny random VAE: the reference has none, and the comparisons stay in latent space), loaded, and run on the stored
inputs in float32 and float64. Every stored output is recomputed: codec outputs, VQ indices and bytes, velocities,
sampler grids, sampler runs, reconstructions and packing vectors. (The `dbg_*` intermediates are checked by
tests/conformance/test_official_transformer.py.) The report, `results/conformance.json`, has one row per output:

- `variant`, `tensor` (the reference name), `dtype` (the stored dtype);
- `max_abs_diff`: max |ours - official| in the official conventions (t = 1 is data, velocity x0 - eps), `null`
  when the shapes differ;
- `tolerance`: the reference README's (exact for indices and bytes, 5e-5 / 1e-9 for fp32 / fp64 maps and velocities,
  2e-4 for fp32 samples), except fp64 samples (1e-6: the release rounds its multistep weights to float32, we do not)
  and the multistep weights themselves (2e-5, the same rounding);
- `pass`: `max_abs_diff <= tolerance`.

Usage: `python benchmarks/conformance_report.py` (no arguments; about half a minute on CPU).
"""

import contextlib
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from cod_diffc import CodFlowMatchScheduler, CodPipeline
from cod_diffc.cli import main
from cod_diffc.models.condition_codec_cod import pack_indices, unpack_indices
from cod_diffc.pipelines.named_configs import get_named_config


ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "results" / "conformance.json"
DTYPES = {"f32": torch.float32, "f64": torch.float64}
MAP_TOLERANCE = {"f32": 5e-5, "f64": 1e-9}
SAMPLE_TOLERANCE = {"f32": 2e-4, "f64": 1e-6}
COEFFICIENT_TOLERANCE = 2e-5
SAMPLE_NAME = re.compile(r"sample_(adam2|euler)_n(\d+)_(f32|f64)")
RECON_NAME = re.compile(r"recon_(adam2|euler)_n(\d+)_uint8")
GRID_NAME = re.compile(r"sampler_(adam2|euler)_n(\d+)_(timesteps|t_inputs|coeffs)")
PACK_NAME = re.compile(r"pack_b(\d+)_n\d+_bytes")
SOLVER_ORDER = {"adam2": 2, "euler": 1}


def reference_folder() -> Path:
    folder = Path(os.environ.get("COD_DIFFC_REFERENCE_DIR", ROOT.parent / "shared" / "reference" / "cod_official"))
    if not folder.is_dir():
        raise FileNotFoundError(f"official-CoD reference folder not found at {folder} (set COD_DIFFC_REFERENCE_DIR)")
    return folder


def convert(folder: Path, variant: str, workdir: Path) -> Path:
    """Runs `cod-diffc convert` on the tiny checkpoint of `variant` and returns the pipeline folder."""
    config = folder / f"tiny_config_{variant}.json"
    output = workdir / variant
    arguments = ["convert", str(folder / f"tiny_{variant}_state_dict.safetensors"), "--config", str(config)]
    arguments += ["--variant", variant.replace("_", "-"), "-o", str(output)]
    if json.loads(config.read_text())["latent"]:
        vae_folder = workdir / "tiny_vae"
        if not vae_folder.is_dir():
            AutoencoderKL(**get_named_config("cod-latent-tiny").vae).save_pretrained(vae_folder)
        arguments += ["--vae", str(vae_folder)]
    messages = io.StringIO()
    with contextlib.redirect_stdout(messages), contextlib.redirect_stderr(messages):
        status = main(arguments)
    if status != 0:
        raise RuntimeError(f"cod-diffc convert failed on {variant}: {messages.getvalue().strip()}")
    return output


def as_bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.tensor(list(data), dtype=torch.uint8)


def codec_outputs(pipe: CodPipeline, reference: dict[str, torch.Tensor], suffix: str) -> dict[str, torch.Tensor]:
    """Encoder, VQ, packed bytes, decompress path, straight-through forward and null condition."""
    codec = pipe.condition_codec
    image = reference["image_uint8"].to(DTYPES[suffix]) / 255  # (1, 3, H, W) in [0, 1]
    height, width = image.shape[-2:]
    latents = codec.encode(image)
    _, indices = codec.quantize(latents)
    _, null_indices = codec.quantize(codec.encoder(torch.full_like(image, -1.0)))  # `encode` checks for [0, 1]
    payload = codec.compress(image)["strings"][0][0]
    grid = codec.code_grid_size(height, width)
    unpacked = unpack_indices(payload, codec.config.codebook_bits, grid[0] * grid[1]).reshape(1, *grid)
    outputs = {
        f"enc_out_{suffix}": latents,
        f"codes_q_{suffix}": codec.lookup_codes(unpacked),
        f"cond_map_{suffix}": codec.decompress([[payload]], grid)["condition"],
        f"cond_map_st_{suffix}": codec(image)["condition"],
        f"null_map_{suffix}": codec.null_condition(height, width),
    }
    if suffix == "f32":  # the release computes indices and bytes in fp32
        (cod_file,) = pipe.compress(image)
        outputs.update(
            vq_indices=indices.reshape(-1),
            vq_indices_null=null_indices.reshape(-1),
            bitstream_uint8=as_bytes_tensor(payload),
            cod_file_uint8=as_bytes_tensor(cod_file),
        )
    return outputs


def velocity_outputs(
    pipe: CodPipeline, reference: dict[str, torch.Tensor], suffix: str, guidance: float
) -> dict[str, torch.Tensor]:
    """Conditional, null-condition and (fp32) guided velocities at the stored t, in the official sign."""
    if suffix == "f32":
        noisy, t = reference["x_t_f32"], reference["t_f32"]
    else:  # the README: x_t in double from x0, eps and the exact t
        t = reference["t_f64"]
        noisy = t.view(-1, 1, 1, 1) * reference["x0_f64"] + (1 - t.view(-1, 1, 1, 1)) * reference["eps_f64"]
    batch = (len(t), -1, -1, -1)
    conditional = -pipe.transformer(noisy, 1 - t, reference[f"cond_map_{suffix}"].expand(*batch)).sample
    unconditional = -pipe.transformer(noisy, 1 - t, reference[f"null_map_{suffix}"].expand(*batch)).sample
    outputs = {f"v_cond_{suffix}": conditional, f"v_null_{suffix}": unconditional}
    if suffix == "f32":
        outputs["v_cfg_f32"] = unconditional + guidance * (conditional - unconditional)
    return outputs


def sample(
    pipe: CodPipeline, reference: dict[str, torch.Tensor], sampler: str, steps: int, suffix: str, guidance: float
) -> torch.Tensor:
    """The official sampler run: stored initial noise, condition decoded from the stored `.cod` file."""
    height, width, payload = pipe.parse_cod_file(bytes(reference["cod_file_uint8"].tolist()))
    grid = pipe.condition_codec.code_grid_size(height, width)
    condition = pipe.condition_codec.decompress([[payload]], grid)["condition"]  # (1, C, H/16, W/16)
    null_condition = pipe.condition_codec.null_condition(height, width)
    scheduler = CodFlowMatchScheduler.from_config(pipe.scheduler.config, solver_order=SOLVER_ORDER[sampler])
    sampling = CodPipeline(
        transformer=pipe.transformer, condition_codec=pipe.condition_codec, scheduler=scheduler, vae=pipe.vae
    )
    sampling.set_progress_bar_config(disable=True)
    return sampling.sample(reference[f"xT_{suffix}"], condition, null_condition, steps, guidance)


def sampler_outputs(
    pipe: CodPipeline, reference: dict[str, torch.Tensor], suffix: str, guidance: float
) -> dict[str, torch.Tensor]:
    """Every stored sampler run of this dtype, and (fp32) the stored uint8 reconstructions."""
    outputs = {}
    for name in reference:
        match = SAMPLE_NAME.fullmatch(name)
        if match is not None and match[3] == suffix:
            outputs[name] = sample(pipe, reference, match[1], int(match[2]), suffix, guidance)
        match = RECON_NAME.fullmatch(name)
        if match is not None and suffix == "f32":  # the release maps to uint8 in bfloat16 arithmetic
            samples = sample(pipe, reference, match[1], int(match[2]), suffix, guidance)
            images = CodPipeline.quantize_uint8(pipe.to_images(samples).bfloat16())  # (1, H, W, 3)
            outputs[name] = torch.from_numpy(images).permute(0, 3, 1, 2)
    return outputs


def grid_and_packing_outputs(reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The sampler time grids, network times and multistep weights in CoD's t, and the stand-alone packing vectors."""
    outputs = {}
    for name in reference:
        match = GRID_NAME.fullmatch(name)
        if match is not None:
            steps = int(match[2])
            scheduler = CodFlowMatchScheduler(solver_order=SOLVER_ORDER[match[1]])
            scheduler.set_timesteps(steps)
            if match[3] == "timesteps":
                outputs[name] = 1.0 - scheduler.sigmas
            elif match[3] == "t_inputs":
                outputs[name] = 1.0 - scheduler.timesteps
            else:  # runs too short for a second-order step store only the current weight
                weights = [scheduler.multistep_coefficients(i) for i in range(steps)]
                outputs[name] = torch.tensor(weights, dtype=torch.float64)[:, -reference[name].shape[1] :]
        match = PACK_NAME.fullmatch(name)
        if match is not None:
            indices = reference[name.replace("_bytes", "_indices")].tolist()
            outputs[name] = as_bytes_tensor(pack_indices(indices, int(match[1])))
    return outputs


def tolerance_of(name: str, official: torch.Tensor) -> float:
    if not official.is_floating_point() or (GRID_NAME.fullmatch(name) and not name.endswith("_coeffs")):
        return 0.0
    if name.endswith("_coeffs"):
        return COEFFICIENT_TOLERANCE
    suffix = name.rsplit("_", 1)[1]
    return SAMPLE_TOLERANCE[suffix] if SAMPLE_NAME.fullmatch(name) else MAP_TOLERANCE[suffix]


def max_abs_diff(ours: torch.Tensor, official: torch.Tensor) -> float | None:
    if tuple(ours.shape) != tuple(official.shape):
        return None
    if official.is_floating_point():
        return float((ours.double() - official.double()).abs().max())
    return float((ours.long() - official.long()).abs().max())


@torch.no_grad()
def report_variant(folder: Path, variant: str, workdir: Path) -> list[dict]:
    reference = load_file(folder / f"tiny_{variant}_io.safetensors")
    guidance = json.loads((folder / f"tiny_config_{variant}.json").read_text())["cfg_scale_used"]
    pipeline_folder = convert(folder, variant, workdir)
    ours = grid_and_packing_outputs(reference)
    for suffix, dtype in DTYPES.items():
        # Cast after loading: `from_pretrained(dtype=...)` keeps `_keep_in_fp32_modules` in float32.
        pipe = CodPipeline.from_pretrained(pipeline_folder).to(dtype=dtype)
        ours |= codec_outputs(pipe, reference, suffix)
        ours |= velocity_outputs(pipe, reference, suffix, guidance)
        ours |= sampler_outputs(pipe, reference, suffix, guidance)
    rows = []
    for name in sorted(ours):
        official = reference[name]
        difference, tolerance = max_abs_diff(ours[name], official), tolerance_of(name, official)
        rows.append(
            {
                "variant": variant,
                "tensor": name,
                "dtype": str(official.dtype).removeprefix("torch."),
                "max_abs_diff": difference,
                "tolerance": tolerance,
                "pass": difference is not None and difference <= tolerance,
            }
        )
    return rows


def main_report() -> int:
    folder = reference_folder()
    variants = sorted(p.name[len("tiny_") : -len("_io.safetensors")] for p in folder.glob("tiny_*_io.safetensors"))
    if not variants:
        raise FileNotFoundError(f"no tiny_<variant>_io.safetensors in {folder}")
    with tempfile.TemporaryDirectory() as workdir:
        rows = [row for variant in variants for row in report_variant(folder, variant, Path(workdir))]
    RESULTS_JSON.parent.mkdir(exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(rows, indent=1) + "\n")

    print(f"{'variant':<14} {'tensor':<28} {'dtype':<8} {'max_abs_diff':>12} {'tolerance':>9}  pass")
    for row in rows:
        difference = "shape!" if row["max_abs_diff"] is None else f"{row['max_abs_diff']:.2e}"
        print(
            f"{row['variant']:<14} {row['tensor']:<28} {row['dtype']:<8} {difference:>12} "
            f"{row['tolerance']:>9.0e}  {'yes' if row['pass'] else 'NO'}"
        )
    failed = sum(not row["pass"] for row in rows)
    print(f"{len(rows)} outputs of {len(variants)} variants in {folder}: {failed} beyond tolerance -> {RESULTS_JSON}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main_report())
