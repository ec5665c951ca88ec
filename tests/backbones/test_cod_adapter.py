"""The CoD backbone (pixel and latent) through DiffC: bit-exact replay, side information, guidance."""

import pytest
import torch

from cod_diffc.backbones import load_backbone
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc import decode, encode, read_stream
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.errors import StreamError

from tiny_models import save_tiny_cod


@pytest.fixture(scope="module", params=["cod-pixel-tiny", "cod-latent-tiny"])
def model_dir(request, tmp_path_factory):
    return save_tiny_cod(tmp_path_factory.mktemp(request.param), seed=0, name=request.param)


def test_decoder_replays_the_encoders_noisy_latent_and_condition(model_dir):
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    encoder = load_backbone("cod", str(model_dir))
    result = encode(
        image,
        encoder,
        stop_step=[0, 3],
        schedule=DiffCSchedule(num_steps=8),
        simulator=ChunkedPFRSimulator(max_chunk_bits=8),
        progress=False,
    )
    codec = encoder.pipeline.condition_codec
    for point in result.points:
        header = read_stream(point.stream)
        assert header.side_info == codec.compress(image)["strings"][0][0]
        assert len(header.side_info) == codec.bytes_per_image(64, 96)
        decoded = decode(point.stream, load_backbone("cod", str(model_dir)), progress=False)
        assert torch.equal(decoded.latent, point.latent)
    assert result.points[0].stop_step == 0 and len(result.points[0].stream) < len(result.points[1].stream)


def test_guidance_uses_the_null_condition_inside_the_window(model_dir):
    adapter = load_backbone("cod", str(model_dir))
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    condition = adapter.prepare_condition(image)
    shape = (1, *adapter.latent_shape(64, 64))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    inside, outside = torch.tensor(0.5), torch.tensor(0.95)

    def velocity(s, guidance_scale):
        return adapter.predict_velocity(x, s, condition, guidance_scale)

    assert not torch.equal(velocity(inside, 3.0), velocity(inside, 1.0))
    assert torch.equal(velocity(outside, 3.0), velocity(outside, 1.0))


def test_side_information_of_the_wrong_size_is_a_stream_error(model_dir):
    adapter = load_backbone("cod", str(model_dir))
    with pytest.raises(StreamError, match="64x64"):
        adapter.load_condition(b"\x00", 64, 64)


def test_fingerprint_covers_weights_and_every_setting_that_changes_outputs(model_dir, tmp_path):
    from cod_diffc import CodPipeline
    from cod_diffc.backbones.cod import CodBackbone

    reference = load_backbone("cod", str(model_dir)).fingerprint()
    assert load_backbone("cod", str(model_dir)).fingerprint() == reference  # stable across loads
    edits = {
        "rope_theta": lambda pipe: pipe.transformer.register_to_config(rope_theta=500.0),
        "codec norm_eps": lambda pipe: pipe.condition_codec.register_to_config(norm_eps=1e-5),
        "guidance_interval": lambda pipe: pipe.register_to_config(guidance_interval=(0.0, 0.5)),
        "a weight": lambda pipe: next(pipe.transformer.parameters()).data.add_(1.0),
    }
    for edit, apply in edits.items():
        pipe = CodPipeline.from_pretrained(str(model_dir))
        apply(pipe)
        assert CodBackbone(pipe).fingerprint() != reference, edit
