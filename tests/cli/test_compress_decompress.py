"""`cod-diffc compress` / `decompress` end to end on a tiny CoD pipeline, and every bad input the issue lists."""

import json

import numpy as np
import PIL.Image
import pytest
import torch

from cod_diffc.backbones import denoise, load_backbone
from cod_diffc.cli import main
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc import encode, read_stream
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.evaluation.metrics import to_uint8
from cod_diffc.image_files import load_image

from tiny_models import SD_IMAGE_SIZE, save_tiny_cod, save_tiny_sd_pipeline


FAST = ["--steps", "6", "--coder", "plain", "--chunk-bits", "8", "--no-progress"]


def assert_cli_matches_the_encoder(
    adapter, image_path, stream_path, png_path, stop_step, denoise_steps, guidance=None
):
    """The CLI's stream equals a Python encode with the FAST settings, and its PNG the encoder's own reconstruction
    (with `denoise_steps` ODE steps at `guidance`, by default the backbone's)."""
    result = encode(
        load_image(image_path),
        adapter,
        stop_step=stop_step,
        schedule=DiffCSchedule(num_steps=6),
        simulator=ChunkedPFRSimulator(max_chunk_bits=8),
        progress=False,
    )
    (point,) = result.points
    assert point.stream == stream_path.read_bytes()
    guidance = adapter.default_guidance_scale if guidance is None else guidance
    latent = denoise(point.latent, point.t, adapter, result.condition, guidance, denoise_steps, progress=False)
    assert np.array_equal(np.asarray(PIL.Image.open(png_path)), to_uint8(adapter.decode_latent(latent)))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    save_tiny_cod(root / "model", seed=0)
    save_tiny_cod(root / "other_model", seed=1)
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(root / "photo.png")
    return root


def test_compress_then_decompress_gives_the_encoders_reconstruction(workspace, capsys):
    stream_path, png_path = workspace / "photo.cdc", workspace / "photo_decoded.png"
    assert (
        main(
            [
                "compress",
                str(workspace / "photo.png"),
                "--model",
                str(workspace / "model"),
                "--stop-step",
                "3",
                "-o",
                str(stream_path),
                *FAST,
            ]
        )
        == 0
    )
    summary = capsys.readouterr().out
    size = stream_path.stat().st_size
    assert f"{size} bytes, {8 * size / (64 * 96):.4f} bpp, codec diffc, stop_step=3" in summary
    assert (
        main(
            [
                "decompress",
                str(stream_path),
                "--model",
                str(workspace / "model"),
                "--denoise-steps",
                "3",
                "-o",
                str(png_path),
                "--no-progress",
            ]
        )
        == 0
    )

    adapter = load_backbone("cod", str(workspace / "model"))
    assert_cli_matches_the_encoder(adapter, workspace / "photo.png", stream_path, png_path, 3, 3)

    mean_path = workspace / "photo_mean.png"
    assert (
        main(
            [
                "decompress",
                str(stream_path),
                "--model",
                str(workspace / "model"),
                "--decode",
                "mean",
                "-o",
                str(mean_path),
                "--no-progress",
            ]
        )
        == 0
    )
    # The posterior mean: one unguided step (the tiny model's default guidance is 3, so this differs from flow).
    assert_cli_matches_the_encoder(adapter, workspace / "photo.png", stream_path, mean_path, 3, 1, guidance=1.0)


def test_one_encode_gives_several_rates_into_a_directory(workspace, capsys):
    out = workspace / "rates"
    assert (
        main(
            [
                "compress",
                str(workspace / "photo.png"),
                "--model",
                str(workspace / "model"),
                "--stop-step",
                "0",
                "2",
                "4",
                "-o",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    sizes = [(out / f"photo_step{n}.cdc").stat().st_size for n in (0, 2, 4)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert (
        main(
            [
                "decompress",
                *(str(out / f"photo_step{n}.cdc") for n in (0, 2, 4)),
                "--model",
                str(workspace / "model"),
                "--denoise-steps",
                "2",
                "-o",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert all((out / f"photo_step{n}.png").is_file() for n in (0, 2, 4))


def test_target_bpp_picks_a_stream_that_fits(workspace):
    out = workspace / "bpp.cdc"
    assert (
        main(
            [
                "compress",
                str(workspace / "photo.png"),
                "--model",
                str(workspace / "model"),
                "--bpp",
                "0.5",
                "-o",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    assert 8 * out.stat().st_size / (64 * 96) <= 0.5


def run_failing(argv, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error
    return error


def test_bad_inputs_give_one_line_errors_and_no_output(workspace, capsys, tmp_path):
    model = ["--model", str(workspace / "model")]
    out = tmp_path / "out.cdc"
    (tmp_path / "text.png").write_text("not an image")
    wrong_kind = tmp_path / "sd_model"
    wrong_kind.mkdir()
    (wrong_kind / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    cases = {
        "no such file": ["compress", str(tmp_path / "missing.png"), *model, "-o", str(out)],
        "not an image": ["compress", str(tmp_path / "text.png"), *model, "-o", str(out)],
        "unknown backbone": ["compress", str(workspace / "photo.png"), "--backbone", "nope", "-o", str(out)],
        "not a CodPipeline": ["compress", str(workspace / "photo.png"), "--model", str(wrong_kind), "-o", str(out)],
        "bpp": ["compress", str(workspace / "photo.png"), *model, "--bpp", "0.001", "-o", str(out), *FAST],
        "has no option 'foo'": ["compress", str(workspace / "photo.png"), *model, "--option", "foo=1", "-o", str(out)],
    }
    for expected, argv in cases.items():
        assert expected in run_failing(argv, capsys)
        assert not out.exists()
        assert not list(tmp_path.glob(".out.cdc.*"))  # no temporary file left behind


def test_an_image_too_large_for_the_memory_is_refused_with_the_choices(workspace, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("cod_diffc.backbones.resources.available_memory_bytes", lambda device: 2**20)  # 1 MiB free
    out = tmp_path / "out.cdc"
    argv = ["compress", str(workspace / "photo.png"), "--model", str(workspace / "model"), "-o", str(out), *FAST]
    error = run_failing(argv, capsys)
    assert "96x64 image needs about" in error and "MiB free" in error
    side = int(error.split("--max-side ")[1].split(",")[0])
    assert not out.exists()
    assert main([*argv, "--max-side", str(side)]) == 0
    header = read_stream(out.read_bytes())
    assert max(header.height, header.width) == side and header.width / header.height == pytest.approx(1.5, rel=0.1)


def test_any_size_round_trips_through_the_cli(workspace, tmp_path):
    rng = np.random.default_rng(1)
    PIL.Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(tmp_path / "odd.png")
    model = ["--model", str(workspace / "model")]
    assert (
        main(
            ["compress", str(tmp_path / "odd.png"), *model, "--stop-step", "2", "-o", str(tmp_path / "odd.cdc"), *FAST]
        )
        == 0
    )
    assert (
        main(
            [
                "decompress",
                str(tmp_path / "odd.cdc"),
                *model,
                "--denoise-steps",
                "2",
                "--no-progress",
                "-o",
                str(tmp_path / "odd_decoded.png"),
            ]
        )
        == 0
    )
    assert PIL.Image.open(tmp_path / "odd_decoded.png").size == (70, 45)


def test_grayscale_rgba_and_16_bit_images_are_converted(tmp_path):
    gray = np.arange(64 * 96, dtype=np.uint32).reshape(64, 96) % 256
    PIL.Image.fromarray(gray.astype(np.uint8), "L").save(tmp_path / "gray.png")
    PIL.Image.fromarray((gray * 257).astype(np.uint16)).save(tmp_path / "deep.png")
    rgba = np.zeros((64, 96, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # fully transparent red: white after compositing
    PIL.Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert torch.equal(load_image(tmp_path / "gray.png"), load_image(tmp_path / "deep.png"))
    assert load_image(tmp_path / "gray.png").shape == (1, 3, 64, 96)
    with pytest.warns(UserWarning, match="alpha"):
        assert load_image(tmp_path / "alpha.png").min() == 1.0


def test_huge_images_are_refused_before_decoding(tmp_path, monkeypatch):
    PIL.Image.new("L", (4097, 4097)).save(tmp_path / "huge.png")
    with pytest.raises(ValueError, match="larger than"):
        load_image(tmp_path / "huge.png")
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)  # PIL's own decompression-bomb guard trips at open
    PIL.Image.new("L", (64, 64)).save(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match="larger than"):
        load_image(tmp_path / "bomb.png")


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((32, 64, 3), dtype=np.uint8)
    pixels[:, :32] = 255  # white left half, black right half, stored landscape
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    PIL.Image.fromarray(pixels).save(tmp_path / "phone.png", exif=exif)
    image = load_image(tmp_path / "phone.png")
    assert image.shape == (1, 3, 64, 32)  # shown portrait
    assert image[0, :, :32].min() == 1.0 and image[0, :, 32:].max() == 0.0  # the white half is now on top


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--steps", "0"], "--steps: 0 is not >= 1"),
        (["--chunk-bits", "24"], "--chunk-bits: 24 is not in [4, 18]"),
        (["--device", "nonsense"], "--device: 'nonsense' is not a torch device"),
    ],
)
def test_out_of_range_options_are_refused_before_any_work(option, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", str(tmp_path / "photo.png"), "-o", str(tmp_path / "out.cdc"), *option])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_output_ending_in_a_slash_is_a_directory(workspace, tmp_path):
    assert (
        main(
            [
                "compress",
                str(workspace / "photo.png"),
                "--model",
                str(workspace / "model"),
                "--stop-step",
                "0",
                "-o",
                f"{tmp_path / 'streams'}/",
                *FAST,
            ]
        )
        == 0
    )
    assert (tmp_path / "streams" / "photo.cdc").is_file()


def test_streams_of_another_model_or_corrupt_streams_are_refused(workspace, capsys, tmp_path):
    stream = tmp_path / "photo.cdc"
    assert (
        main(
            [
                "compress",
                str(workspace / "photo.png"),
                "--model",
                str(workspace / "model"),
                "--stop-step",
                "2",
                "-o",
                str(stream),
                *FAST,
            ]
        )
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "decoded.png"
    error = run_failing(["decompress", str(stream), "--model", str(workspace / "other_model"), "-o", str(out)], capsys)
    assert "fingerprint" in error or "model" in error
    corrupt = tmp_path / "corrupt.cdc"
    data = bytearray(stream.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    assert "corrupt.cdc" in run_failing(
        ["decompress", str(corrupt), "--model", str(workspace / "model"), "-o", str(out)], capsys
    )
    assert not out.exists()


def test_backbones_lists_builtins_and_installed_plugins(installed_plugin, capsys):
    assert main(["backbones"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert {"cod", "gaussian", "ldm", "sd", "toy-flow"} <= set(rows)
    assert "default model: ldm-small (embedded)" in rows["ldm"] and rows["toy-flow"] == "toy-flow"


def test_an_installed_channel_coder_is_listed_chosen_by_name_and_read_back_from_the_stream(
    installed_plugin, workspace, tmp_path, capsys
):
    model = ["--model", str(workspace / "model")]
    stream, png = tmp_path / "salted.cdc", tmp_path / "salted.png"
    options = ["--steps", "6", "--coder", "toy-salted-pfr", "--chunk-bits", "8", "--stop-step", "3", "--no-progress"]
    assert main(["compress", str(workspace / "photo.png"), *model, "-o", str(stream), *options]) == 0
    assert read_stream(stream.read_bytes()).channel.startswith(bytes([255, 14]) + b"toy-salted-pfr")
    capsys.readouterr()
    assert main(["codecs", "--channels"]) == 0
    listed = [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ["chunked_pfr (plain)", "pooled_pfr (pooled)", "toy-salted-pfr"]
    assert main(["decompress", str(stream), *model, "-o", str(png), "--no-progress"]) == 0
    assert PIL.Image.open(png).size == (96, 64)


def test_stable_diffusion_backbone_end_to_end(tmp_path, capsys):
    model = save_tiny_sd_pipeline(tmp_path / "sd", "epsilon")
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (SD_IMAGE_SIZE, SD_IMAGE_SIZE, 3), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(tmp_path / "a.png")
    stream, png = tmp_path / "a.cdc", tmp_path / "a_decoded.png"
    assert (
        main(
            [
                "compress",
                str(tmp_path / "a.png"),
                "--backbone",
                "sd",
                "--model",
                str(model),
                "--stop-step",
                "4",
                "--option",
                "prompt=a cat",
                "-o",
                str(stream),
                *FAST,
            ]
        )
        == 0
    )
    assert f"{stream.stat().st_size} bytes" in capsys.readouterr().out
    assert (
        main(
            ["decompress", str(stream), "--model", str(model), "--denoise-steps", "2", "-o", str(png), "--no-progress"]
        )
        == 0
    )

    adapter = load_backbone("sd", str(model), prompt="a cat")
    assert_cli_matches_the_encoder(adapter, tmp_path / "a.png", stream, png, 4, 2)


def test_python_dash_m_runs_the_same_command():
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-m", "cod_diffc", "--help"], capture_output=True, text=True)
    assert completed.returncode == 0 and "compress" in completed.stdout


@pytest.mark.parametrize("codec", ["turbo-ddcm", "ddcm"])
def test_codebook_codecs_round_trip_and_the_decoder_reads_the_codec_from_the_stream(workspace, capsys, codec):
    from cod_diffc.codecs import decompress, stream_codec

    stream_path, png_path = workspace / f"photo_{codec}.cdc", workspace / f"photo_{codec}.png"
    assert (
        main(
            [
                "compress",
                str(workspace / "photo.png"),
                "--model",
                str(workspace / "model"),
                "--codec",
                codec,
                "--bpp",
                "0.6",
                "--steps",
                "6",
                "-o",
                str(stream_path),
                "--no-progress",
            ]
        )
        == 0
    )
    assert f"codec {codec}" in capsys.readouterr().out
    stream = stream_path.read_bytes()
    assert stream_codec(stream) == codec and 8 * len(stream) / (64 * 96) <= 0.6
    assert (
        main(
            [
                "decompress",
                str(stream_path),
                "--model",
                str(workspace / "model"),
                "--denoise-steps",
                "2",
                "-o",
                str(png_path),
                "--no-progress",
            ]
        )
        == 0
    )
    adapter = load_backbone("cod", str(workspace / "model"))
    expected = to_uint8(decompress(stream, adapter, num_denoise_steps=2, progress=False))
    assert np.array_equal(np.asarray(PIL.Image.open(png_path)), expected)


def test_codecs_lists_every_codec(capsys):
    assert main(["codecs"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert list(rows) == ["cod-lite-onestep", "ddcm", "diffc", "turbo-ddcm"]
    assert "(default) progressive;" in rows["diffc"] and "one rate per stream;" in rows["turbo-ddcm"]


def test_codec_errors_are_one_line_and_write_nothing(workspace, capsys, tmp_path):
    model = ["--model", str(workspace / "model")]
    out = tmp_path / "out.cdc"
    photo = str(workspace / "photo.png")
    cases = {
        "unknown codec 'jpeg'": ["compress", photo, *model, "--codec", "jpeg", "--bpp", "1", "-o", str(out)],
        "codec 'turbo-ddcm' is not progressive: give a target rate": [
            "compress",
            photo,
            *model,
            "--codec",
            "turbo-ddcm",
            "--stop-step",
            "2",
            "-o",
            str(out),
        ],
        "codec 'ddcm' is not progressive: give a target rate": [
            "compress",
            photo,
            *model,
            "--codec",
            "ddcm",
            "-o",
            str(out),
        ],
        "codec 'turbo-ddcm' takes no setting chunk_bits": [
            "compress",
            photo,
            *model,
            "--codec",
            "turbo-ddcm",
            "--chunk-bits",
            "8",
            "--bpp",
            "1",
            "-o",
            str(out),
        ],
        "unknown channel coder 'nope'; available channel coders: chunked_pfr": [
            "compress",
            photo,
            *model,
            "--coder",
            "nope",
            "--stop-step",
            "2",
            "-o",
            str(out),
        ],
        "below the smallest file": [
            "compress",
            photo,
            *model,
            "--codec",
            "turbo-ddcm",
            "--bpp",
            "0.001",
            "-o",
            str(out),
            "--no-progress",
        ],
    }
    for expected, argv in cases.items():
        assert expected in run_failing(argv, capsys)
        assert not out.exists()
    # Several targets, one too low: no file for any of them.
    argv = [
        "compress",
        photo,
        *model,
        "--codec",
        "turbo-ddcm",
        "--steps",
        "4",
        "--bpp-list",
        "0.6",
        "0.001",
        "-o",
        str(tmp_path / "rates") + "/",
        "--no-progress",
    ]
    assert "below the smallest file" in run_failing(argv, capsys)
    assert not list(tmp_path.glob("rates/*.cdc"))


def test_stream_of_an_unknown_codec_or_forged_payload_is_refused_before_any_output(workspace, capsys, tmp_path):
    import dataclasses

    from cod_diffc.codecs import read_container, write_container

    stream_path = workspace / "photo_turbo-ddcm.cdc"
    if not stream_path.exists():
        assert (
            main(
                [
                    "compress",
                    str(workspace / "photo.png"),
                    "--model",
                    str(workspace / "model"),
                    "--codec",
                    "turbo-ddcm",
                    "--bpp",
                    "0.6",
                    "--steps",
                    "6",
                    "-o",
                    str(stream_path),
                    "--no-progress",
                ]
            )
            == 0
        )
    container = read_container(stream_path.read_bytes())
    unknown = tmp_path / "unknown.cdc"
    unknown.write_bytes(write_container(dataclasses.replace(container, codec="jpeg-xxl")))
    forged = tmp_path / "forged.cdc"
    forged.write_bytes(write_container(dataclasses.replace(container, payload=container.payload[:-3])))
    for path, expected in ((unknown, "codec 'jpeg-xxl', which is not installed"), (forged, "atom choices needs")):
        out = tmp_path / f"{path.stem}.png"
        error = run_failing(["decompress", str(path), "--model", str(workspace / "model"), "-o", str(out)], capsys)
        assert str(path) in error and expected in error
        assert not out.exists()


def test_a_backbone_whose_latent_disagrees_with_its_latent_shape_is_named(tmp_path):
    from cod_diffc.backbones import GaussianBackbone
    from cod_diffc.ddcm import TurboDDCMCodec

    class BrokenBackbone(GaussianBackbone):
        def encode_image(self, image):
            return super().encode_image(image)[:, :2]

    with pytest.raises(ValueError, match=r"encode_image gave a latent of shape \(1, 2, 16, 16\)"):
        TurboDDCMCodec(num_steps=4).compress(torch.rand(1, 3, 16, 16), BrokenBackbone(), target_bpp=4.0)
