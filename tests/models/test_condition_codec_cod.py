import math

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from cod_diffc.models.condition_codec_cod import CodConditionCodec, pack_indices, unpack_indices


TINY_CONFIG = {
    "base_channels": 4,
    "codebook_bits": 4,
    "codebook_dim": 4,
    "downsampling": 32,
    "up2x": True,
    "condition_channels": 8,
    "norm_num_groups": 2,
}
TINY_64_BIT_CONFIG = {**TINY_CONFIG, "downsampling": 128}


def tiny_codec(seed: int = 0, **overrides) -> CodConditionCodec:
    """A tiny codec whose decoder is not the zero map of the official initialisation."""
    torch.manual_seed(seed)
    codec = CodConditionCodec(**{**TINY_CONFIG, **overrides})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in codec.decoder.parameters():
            if not parameter.any():
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
        # Spread the codebook over the range of encoder outputs so that several indices occur.
        codebook = codec.codebook.weight
        codebook.copy_(torch.randn(codebook.shape, generator=generator) * 0.5)
    return codec.eval()


def images(batch_size: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch_size, 3, height, width, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------------
# Configuration, loading, determinism
# ----------------------------------------------------------------------------------------------------------------


def test_save_pretrained_round_trip_gives_equal_outputs(tmp_path):
    codec = tiny_codec()
    batch = images(2, 64, 96)
    codec.save_pretrained(tmp_path)
    loaded = CodConditionCodec.from_pretrained(tmp_path).eval()

    def public_config(model: CodConditionCodec) -> dict:
        # JSON turns tuples into lists; keys starting with "_" are diffusers bookkeeping.
        return {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items() if not k.startswith("_")}

    assert public_config(loaded) == public_config(codec)
    with torch.no_grad():
        expected, reloaded = codec(batch), loaded(batch)
    assert torch.equal(expected["condition"], reloaded["condition"])
    assert torch.equal(expected["indices"], reloaded["indices"])
    assert loaded.compress(batch)["strings"] == codec.compress(batch)["strings"]


def test_outputs_are_deterministic():
    batch = images(2, 64, 96)
    first, second = tiny_codec(seed=3), tiny_codec(seed=3)
    with torch.no_grad():
        outputs = [first(batch), first(batch), second(batch)]
    for other in outputs[1:]:
        assert torch.equal(outputs[0]["condition"], other["condition"])
        assert torch.equal(outputs[0]["indices"], other["indices"])


def test_initial_decoder_outputs_zero():
    torch.manual_seed(0)
    codec = CodConditionCodec(**TINY_64_BIT_CONFIG)
    zero_conv_parameters = sorted(
        name for name, parameter in codec.decoder.named_parameters() if "conv" in name and not parameter.any()
    )
    # conv_out, the two inner up-samplers' conv2 and the final (up2x) up-sampler's conv2.
    assert zero_conv_parameters == sorted(
        f"{module}.{kind}"
        for module in ["conv_out", "blocks.2.resnet.conv2", "blocks.5.resnet.conv2", "output_upsampler.resnet.conv2"]
        for kind in ["weight", "bias"]
    )
    with torch.no_grad():
        condition = codec(images(1, 128, 256))["condition"]
    assert condition.shape == (1, 8, 8, 16)
    assert not condition.any()


def test_builds_on_meta_device():
    with torch.device("meta"):
        codec = CodConditionCodec(**TINY_64_BIT_CONFIG)
    assert all(parameter.is_meta for parameter in codec.parameters())
    with torch.device("cpu"):
        reference = CodConditionCodec(**TINY_64_BIT_CONFIG)
    assert {k: v.shape for k, v in codec.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


# ----------------------------------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, up2x, height, width, code_grid",
    [
        (TINY_CONFIG, True, 64, 96, (2, 3)),
        (TINY_CONFIG, True, 96, 32, (3, 1)),
        (TINY_CONFIG, False, 48, 80, (3, 5)),
        (TINY_64_BIT_CONFIG, True, 128, 256, (1, 2)),
        (TINY_64_BIT_CONFIG, False, 192, 64, (3, 1)),
    ],
)
def test_shape_contracts(config, up2x, height, width, code_grid):
    codec = tiny_codec(**{**config, "up2x": up2x})
    batch = images(2, height, width)
    condition_grid = (height // 16, width // 16)
    assert codec.code_stride == (config["downsampling"] if up2x else config["downsampling"] // 2)
    assert codec.code_grid_size(height, width) == code_grid
    assert codec.condition_grid_size(height, width) == condition_grid

    with torch.no_grad():
        latents = codec.encode(batch)
        codes, indices = codec.quantize(latents)
        outputs = codec(batch)
        compressed = codec.compress(batch)
    assert latents.shape == (2, 4, *code_grid)
    assert codes.shape == latents.shape
    assert indices.shape == (2, *code_grid) and indices.dtype == torch.int64
    assert outputs["condition"].shape == (2, 8, *condition_grid)
    assert outputs["likelihoods"]["codes"].shape == (2, 1, *code_grid)
    assert codec.decode_indices(indices).shape == (2, 8, *condition_grid)
    assert codec.null_condition(height, width, batch_size=3).shape == (3, 8, *condition_grid)
    assert compressed["shape"] == code_grid
    assert [len(string) for string in compressed["strings"][0]] == [codec.bytes_per_image(height, width)] * 2
    assert codec.bits_per_image(height, width) == code_grid[0] * code_grid[1] * 4


# ----------------------------------------------------------------------------------------------------------------
# Quantiser and losses
# ----------------------------------------------------------------------------------------------------------------


def test_quantize_picks_nearest_codebook_vector_and_first_on_ties():
    codec = tiny_codec()
    codebook = codec.codebook.weight.detach()
    with torch.no_grad():
        codec.codebook.weight[5] = codebook[3]  # an exact duplicate of vector 3
    latents = torch.stack([codebook[3], codebook[7] + 1e-3, codebook[0] - 1e-3], dim=1)[None, :, None, :]
    codes, indices = codec.quantize(latents)  # latents (1, D, 1, 3)
    assert indices.tolist() == [[[3, 7, 0]]]
    assert torch.equal(codes, codec.codebook.weight[indices].permute(0, 3, 1, 2))


def test_vq_losses_and_their_gradients():
    codec = tiny_codec().train()
    batch = images(2, 64, 96)
    outputs = codec(batch)
    latents = codec.encode(batch)
    codes = codec.lookup_codes(outputs["indices"])
    expected = ((codes - latents) ** 2).mean()
    torch.testing.assert_close(outputs["commitment_loss"], expected)
    torch.testing.assert_close(outputs["codebook_loss"], expected)
    torch.testing.assert_close(outputs["vq_loss"], 1.25 * expected)
    assert torch.all(outputs["likelihoods"]["codes"] == 2.0**-4)

    # The commitment term trains only the encoder, the codebook term only the codebook.
    commitment_grads = torch.autograd.grad(
        outputs["commitment_loss"], [codec.encoder.conv_in.weight, codec.codebook.weight], allow_unused=True
    )
    assert commitment_grads[0].abs().sum() > 0 and commitment_grads[1] is None
    codebook_grads = torch.autograd.grad(
        outputs["codebook_loss"], [codec.encoder.conv_in.weight, codec.codebook.weight], allow_unused=True
    )
    assert codebook_grads[0] is None and codebook_grads[1].abs().sum() > 0


def test_straight_through_passes_decoder_gradients_to_the_encoder():
    codec = tiny_codec().train()
    condition, indices, vq_loss = codec(images(1, 64, 96), return_dict=False)
    assert indices.shape == (1, 2, 3) and vq_loss.ndim == 0
    condition.square().sum().backward()
    assert codec.encoder.conv_in.weight.grad.abs().sum() > 0


def test_gradient_checkpointing_gives_same_gradients():
    batch = images(2, 64, 128)

    def gradients(codec: CodConditionCodec) -> dict[str, torch.Tensor]:
        outputs = codec.train()(batch)
        (outputs["condition"].square().mean() + outputs["vq_loss"]).backward()
        return {name: parameter.grad.clone() for name, parameter in codec.named_parameters()}

    config = {**TINY_64_BIT_CONFIG, "up2x": False}
    plain = gradients(tiny_codec(**config))
    checkpointed_codec = tiny_codec(**config)
    calls = []

    def counting_checkpoint(module, *args):
        calls.append(type(module).__name__)
        return checkpoint(module.__call__, *args, use_reentrant=False)

    checkpointed_codec.enable_gradient_checkpointing(counting_checkpoint)
    checkpointed = gradients(checkpointed_codec)
    assert checkpointed_codec.is_gradient_checkpointing
    assert {"CodResnetBlock", "CodAttentionBlock", "CodUpsample"} <= set(calls)
    assert checkpointed.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


# ----------------------------------------------------------------------------------------------------------------
# Bits
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", range(1, 17))
def test_pack_unpack_round_trip(bits):
    generator = torch.Generator().manual_seed(bits)
    for count in [0, 1, 3, 7, 13, 64]:
        indices = torch.randint(0, 2**bits, (count,), generator=generator)
        if count:
            indices[0] = 2**bits - 1
        packed = pack_indices(indices, bits)
        assert len(packed) == math.ceil(count * bits / 8)
        assert pack_indices(indices.tolist(), bits) == packed
        assert torch.equal(unpack_indices(packed, bits, count), indices)


def test_pack_is_msb_first_big_endian_with_zero_padding():
    # 001 010 011 111 -> 0010 1001 1111 (+ 0000 padding)
    assert pack_indices([1, 2, 3, 7], bits=3) == bytes([0b00101001, 0b11110000])
    assert pack_indices(torch.tensor([[1, 2], [3, 4]]), bits=4) == bytes([0x12, 0x34])
    assert pack_indices([0xABC], bits=12) == bytes([0xAB, 0xC0])


def test_compressing_a_512_image_takes_128_bytes_at_4_bits_ds_32():
    codec = tiny_codec()
    assert codec.bytes_per_image(512, 512) == 128
    assert codec.bits_per_image(512, 512) == 1024
    compressed = codec.compress(images(1, 512, 512))
    assert compressed["shape"] == (16, 16)
    assert [len(string) for string in compressed["strings"][0]] == [128]

    codec_64_bits = tiny_codec(**TINY_64_BIT_CONFIG)
    assert codec_64_bits.bits_per_image(512, 512) == 64
    assert [len(string) for string in codec_64_bits.compress(images(1, 512, 512))["strings"][0]] == [8]


def test_compress_then_decompress_equals_decoding_forward_indices():
    codec = tiny_codec()
    batch = images(3, 64, 96)
    with torch.no_grad():
        outputs = codec(batch)
    compressed = codec.compress(batch)
    (strings,) = compressed["strings"]  # CompressAI's layout: one list per latent, one string per image
    assert all(isinstance(string, bytes) for string in strings) and len(strings) == 3
    # The byte count idiom of CompressAI's evaluation code
    assert sum(len(s[0]) for s in compressed["strings"]) == codec.bytes_per_image(64, 96)
    assert len(set(outputs["indices"].reshape(-1).tolist())) > 1, "test images should use several codes"

    condition = codec.decompress(compressed["strings"], compressed["shape"])["condition"]
    with torch.no_grad():
        assert torch.equal(condition, codec.decode_indices(outputs["indices"]))
    torch.testing.assert_close(condition, outputs["condition"], rtol=0, atol=1e-5)
    for string, image_indices in zip(strings, outputs["indices"], strict=True):
        assert torch.equal(unpack_indices(string, 4, 6).reshape(2, 3), image_indices)


# ----------------------------------------------------------------------------------------------------------------
# Null condition
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def test_null_condition_is_the_quantised_all_minus_one_image_at_the_size_asked():
    codec = tiny_codec()
    for height, width in [(64, 96), (96, 64), (32, 32)]:
        null_images = torch.full((1, 3, height, width), -1.0)
        _, indices = codec.quantize(codec.encoder(null_images))
        expected = codec.decoder(codec.lookup_codes(indices))
        null_condition = codec.null_condition(height, width, batch_size=2)
        assert null_condition.shape == (2, 8, height // 16, width // 16)
        assert torch.equal(null_condition[0], expected[0]) and torch.equal(null_condition[1], expected[0])

    # Condition dropout in training goes through the same path.
    batch = images(2, 64, 96)
    outputs = codec(batch, null_mask=torch.tensor([True, False]))
    torch.testing.assert_close(outputs["condition"][0], codec.null_condition(64, 96)[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(outputs["condition"][1], codec(batch)["condition"][1], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_images, message",
    [
        (torch.rand(1, 4, 64, 96), "3 channels"),
        (torch.rand(1, 3, 48, 96), "height 48"),
        (torch.rand(1, 3, 64, 80), "width 80"),
        (torch.rand(3, 64, 96), "4-D"),
        (torch.rand(1, 3, 64, 96) + 1.01, r"\[0, 1\]"),
        (torch.rand(1, 3, 64, 96) * 2 - 1, r"\[0, 1\]"),
        (torch.full((1, 3, 64, 96), float("nan")), r"\[0, 1\]"),
        (torch.randint(0, 255, (1, 3, 64, 96), dtype=torch.uint8), "floating point"),
    ],
)
def test_invalid_images_raise(bad_images, message):
    codec = tiny_codec()
    for method in [codec.encode, codec.compress, codec]:
        with pytest.raises(ValueError, match=message):
            method(bad_images)


def test_tiny_range_slack_is_accepted():
    codec = tiny_codec()
    batch = images(1, 64, 96)
    batch[0, 0, 0, 0], batch[0, 0, 0, 1] = -1e-7, 1 + 1e-7
    assert codec.encode(batch).shape == (1, 4, 2, 3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"codebook_bits": 0}, "codebook_bits"),
        ({"codebook_bits": 17}, "codebook_bits"),
        ({"downsampling": 64}, "downsampling=64"),
        ({"downsampling": 128, "channel_multipliers": (1, 1, 2, 2, 4)}, "6 encoder stages"),
        ({"channel_multipliers": (1, 1, 2, 0, 4)}, "channel_multipliers must be positive"),
        ({"norm_num_groups": 3}, "norm_num_groups=3"),
        ({"condition_channels": 9}, "width 9"),
        ({"codebook_dim": 0}, "codebook_dim"),
        ({"norm_eps": 0.0}, "norm_eps"),
    ],
)
def test_invalid_configs_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        CodConditionCodec(**{**TINY_CONFIG, **overrides})


def test_invalid_indices_and_streams_raise():
    codec = tiny_codec()
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        codec.decode_indices(torch.full((1, 2, 3), 16))
    with pytest.raises(ValueError, match="integers"):
        codec.decode_indices(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="3-D"):
        codec.decode_indices(torch.zeros(2, 3, dtype=torch.int64))

    string = codec.compress(images(1, 64, 96))["strings"][0][0]
    with pytest.raises(ValueError, match="takes 3 bytes, got 2"):
        codec.decompress([[string[:-1]]], (2, 3))
    with pytest.raises(ValueError, match="code grid"):
        codec.decompress([[string]], (6,))
    with pytest.raises(ValueError, match="one list per latent"):
        codec.decompress([string], (2, 3))
    with pytest.raises(ValueError, match="not a positive multiple"):
        codec.null_condition(64, 100)


def test_invalid_packing_arguments_raise():
    with pytest.raises(ValueError, match="bits"):
        pack_indices([0], bits=17)
    with pytest.raises(ValueError, match="bits"):
        unpack_indices(b"\x00", bits=0, count=1)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        pack_indices([8], bits=3)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        pack_indices(torch.tensor([-1]), bits=3)
    with pytest.raises(ValueError, match="integers"):
        pack_indices(torch.tensor([1.0]), bits=3)
    with pytest.raises(ValueError, match="takes 2 bytes, got 3"):
        unpack_indices(b"\x00\x00\x00", bits=3, count=4)
    with pytest.raises(ValueError, match="padding"):
        unpack_indices(bytes([0b00101001, 0b11110001]), bits=3, count=4)
