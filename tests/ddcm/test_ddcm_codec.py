"""The DDCM family on the analytic Gaussian backbone and on a tiny CoD: exact decode, rate control, bad streams."""

import dataclasses
import math

import pytest
import torch

from cod_diffc.backbones import load_backbone
from cod_diffc.codecs import decompress, load_codec, read_container, stream_codec, write_container
from cod_diffc.ddcm import DDCMCodec, TurboDDCMCodec
from cod_diffc.ddcm.bitstream import read_payload, write_payload
from cod_diffc.ddcm.codec import _digits, _from_digits, _select
from cod_diffc.errors import StreamError

from tiny_models import save_tiny_cod


SIDE = 32
CODECS = {
    "turbo-ddcm": TurboDDCMCodec(num_steps=12, codebook_bits=8, block_width=1024, max_atoms=16),
    "ddcm": DDCMCodec(num_steps=100, codebook_bits=8, block_width=1024),
}


@pytest.fixture(scope="module")
def adapter():
    return load_backbone("gaussian", std=0.3)


@pytest.fixture(scope="module")
def image():
    noise = torch.randn(1, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    return (0.5 + 0.15 * noise).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float(((a - b) ** 2).mean()))


@pytest.mark.parametrize("name", CODECS)
class TestGaussianBackbone:
    @pytest.mark.parametrize("target", [1.0, 2.5])  # Turbo-DDCM: 1 atom a step, then several
    def test_decoder_replays_the_encoders_latent_bit_for_bit(self, name, adapter, image, target):
        result = CODECS[name].encode(image, adapter, target_bpp=target, progress=False)
        decoded = CODECS[name].decode(result.stream, load_backbone("gaussian", std=0.3), progress=False)
        assert torch.equal(decoded.latent, result.latent) and decoded.t == result.t
        assert stream_codec(result.stream) == name

    def test_files_fit_their_targets_and_more_bytes_give_a_closer_image(self, name, adapter, image):
        psnrs = []
        for target in (0.6, 4.0):
            stream = CODECS[name].compress(image, adapter, target_bpp=target, progress=False)
            assert 8 * len(stream) / SIDE**2 <= target
            psnrs.append(psnr(decompress(stream, adapter, method="mean", progress=False), image))
        assert psnrs[1] > psnrs[0] + 1

    def test_rate_control_fills_the_target_with_one_more_atom_in_the_first_steps(self, name, adapter, image):
        result = CODECS[name].encode(image, adapter, target_bpp=1.5, progress=False)
        target_bytes = 1.5 * SIDE**2 / 8
        if name == "ddcm":  # one atom a step: the granularity is a step of 3 blocks x 8 bits
            assert result.extra_atom_steps == 0 and target_bytes - 3 < len(result.stream) <= target_bytes
        else:  # the granularity is one step with one atom more: 3 blocks x (about 5 + 1 bits)
            assert result.extra_atom_steps > 0 and target_bytes - 3 * 8 < len(result.stream) <= target_bytes
        decoded = CODECS[name].decode(result.stream, adapter, progress=False)
        assert torch.equal(decoded.latent, result.latent)

    def test_chosen_atoms_beat_the_same_sampler_with_fixed_atoms(self, name, adapter, image):
        """The choices carry the image: the same stream with every choice 0 (the sampler on codebook noise that
        ignores the image) decodes more than 2 dB further from it."""
        coded = CODECS[name].compress(image, adapter, target_bpp=2.0, progress=False)
        uninformed = forge_payload(coded, choices=bytes(len(read_payload(read_container(coded).payload).choices)))
        decoded = [decompress(stream, adapter, method="mean", progress=False) for stream in (coded, uninformed)]
        assert psnr(decoded[0], image) > psnr(decoded[1], image) + 2

    def test_condition_only_stream_when_the_target_allows_no_step(self, name, adapter, image):
        result = CODECS[name].encode(image, adapter, target_bpp=1e-9, clamp_targets=True, progress=False)
        assert result.stop_step == 0 and result.t == 1.0

    def test_target_below_the_smallest_file_names_it(self, name, adapter, image):
        with pytest.raises(ValueError, match="below the smallest file"):
            CODECS[name].compress(image, adapter, target_bpp=0.01, progress=False)

    def test_stream_of_another_model_or_codec_is_refused(self, name, adapter, image):
        stream = CODECS[name].compress(image, adapter, target_bpp=1.0, progress=False)
        with pytest.raises(StreamError, match="another 'gaussian' model"):
            CODECS[name].decompress(stream, load_backbone("gaussian", std=0.5), progress=False)
        other = "ddcm" if name == "turbo-ddcm" else "turbo-ddcm"
        with pytest.raises(StreamError, match=f"not a {other} stream"):
            CODECS[other].decompress(stream, adapter, progress=False)

    def test_every_truncation_and_flipped_byte_is_a_stream_error(self, name, adapter, image):
        stream = CODECS[name].compress(image, adapter, target_bpp=0.7, progress=False)
        for length in range(len(stream)):
            with pytest.raises(StreamError):
                decompress(stream[:length], adapter, progress=False)
        for offset in range(len(stream)):
            corrupted = bytearray(stream)
            corrupted[offset] ^= 0x04
            with pytest.raises(StreamError):
                decompress(bytes(corrupted), adapter, progress=False)


def forge_payload(stream: bytes, **changes) -> bytes:
    """The stream with payload fields changed, behind a valid checksum."""
    container = read_container(stream)
    payload = dataclasses.replace(read_payload(container.payload), **changes)
    return write_container(dataclasses.replace(container, payload=write_payload(payload)))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_atoms": 3}, "atom choices"),
        ({"extra_atom_steps": 1}, "atom choices"),
        ({"stop_step": 2, "extra_atom_steps": 0}, "atom choices"),
        ({"codebook_bits": 9}, "atom choices"),
        ({"block_width": 7}, "atom choices"),
        ({"choices": b"\xff" * 4}, "atom choices"),
    ],
)
def test_forged_payload_behind_a_valid_checksum_is_a_stream_error(adapter, image, changes, message):
    stream = CODECS["turbo-ddcm"].compress(image, adapter, target_bpp=1.0, progress=False)
    with pytest.raises(StreamError, match=message):
        decompress(forge_payload(stream, **changes), adapter, progress=False)


def test_ddcm_stream_claiming_several_atoms_is_refused(adapter, image):
    stream = CODECS["ddcm"].compress(image, adapter, target_bpp=1.0, progress=False)
    container = read_container(stream)
    forged = write_container(
        dataclasses.replace(
            container, payload=write_payload(dataclasses.replace(read_payload(container.payload), num_atoms=2))
        )
    )
    with pytest.raises(StreamError, match="chooses one atom"):
        decompress(forged, adapter, progress=False)


@pytest.mark.parametrize("num_atoms", range(1, 9))
def test_choices_decode_to_the_encoders_indices_and_coefficients_bit_for_bit(num_atoms):
    """Whatever 1 / sqrt(M) rounds to, both sides must round it the same way (M = 5 once differed in the last bit)."""
    scores = torch.randn(32, 3, generator=torch.Generator().manual_seed(num_atoms))  # (K, B)
    indices, coefficients = _select(scores, num_atoms, signed=True)
    decoded = _from_digits(_digits(indices, coefficients, signed=True), 32, num_atoms, True, torch.device("cpu"))
    assert torch.equal(decoded[0], indices) and torch.equal(decoded[1], coefficients)


def test_turbo_selection_takes_the_largest_scores_with_their_signs():
    scores = torch.tensor([[0.1, -5.0], [-3.0, 0.2], [2.0, 4.0], [0.0, -0.1]])  # (K=4, B=2)
    indices, coefficients = _select(scores, 2, signed=True)
    assert indices.tolist() == [[1, 2], [0, 2]]
    torch.testing.assert_close(coefficients, torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]) / math.sqrt(2))
    indices, coefficients = _select(scores, 1, signed=False)
    assert indices.tolist() == [[2], [2]] and coefficients.tolist() == [[1.0], [1.0]]


def test_codec_settings_are_checked():
    with pytest.raises(ValueError, match="codebook size"):
        TurboDDCMCodec(codebook_bits=17)
    with pytest.raises(ValueError, match="atoms per step"):
        TurboDDCMCodec(codebook_bits=4, max_atoms=17)
    with pytest.raises(ValueError, match="num_steps"):
        load_codec("ddcm", num_steps=0)


@pytest.fixture(scope="module")
def cod_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_cod")
    save_tiny_cod(path, seed=0)
    return path


@pytest.mark.parametrize("name", CODECS)
def test_tiny_cod_round_trip_at_any_size(name, cod_dir):
    """CoD's condition travels as side information; an odd size is padded for the backbone and cropped back."""
    image = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(3))
    encoder = load_backbone("cod", str(cod_dir))
    result = CODECS[name].encode(image, encoder, target_bpp=0.8, progress=False)
    decoder = load_backbone("cod", str(cod_dir))
    decoded = CODECS[name].decode(result.stream, decoder, progress=False)
    assert torch.equal(decoded.latent, result.latent)
    assert decoded.condition.side_info == result.condition.side_info != b""
    reconstruction = decompress(result.stream, decoder, num_denoise_steps=2, progress=False)
    assert reconstruction.shape == image.shape


@pytest.mark.parametrize("backbone", ["cod-latent", "sd-epsilon", "sd-v_prediction"])
def test_turbo_ddcm_round_trips_on_latent_backbones(backbone, tmp_path):
    """The same codec through the latent CoD (its VAE) and Stable Diffusion (discrete VP, epsilon and v)."""
    from tiny_models import SD_IMAGE_SIZE, save_tiny_sd_pipeline

    if backbone == "cod-latent":
        model, name, side = save_tiny_cod(tmp_path / "cod", seed=0, name="cod-latent-tiny"), "cod", 64
    else:
        model, name, side = save_tiny_sd_pipeline(tmp_path / "sd", backbone.split("-")[1]), "sd", SD_IMAGE_SIZE
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(4))
    codec = TurboDDCMCodec(num_steps=5, codebook_bits=6, block_width=64, min_block_width=16)
    result = codec.encode(image, load_backbone(name, str(model)), target_bpp=2.0, progress=False)
    assert result.stop_step > 0 and 8 * len(result.stream) / side**2 <= 2.0
    decoder = load_backbone(name, str(model))
    assert torch.equal(codec.decode(result.stream, decoder, progress=False).latent, result.latent)
    assert decompress(result.stream, decoder, num_denoise_steps=2, progress=False).shape == image.shape
