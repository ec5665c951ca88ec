"""`CodLitePipeline` as diffusers pipelines are: saved and loaded as itself, refused by `CodPipeline`, its `.cod`
files width first, its sampler the release's (the numbers: tests/conformance/test_cod_lite.py)."""

import pytest
import torch

from cod_diffc import CodLitePipeline, CodPipeline


@pytest.fixture(scope="module")
def pipeline() -> CodLitePipeline:
    torch.manual_seed(0)
    pipe = CodLitePipeline.from_named_config("cod-lite-tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_saved_and_loaded_as_itself_and_refused_by_cod_pipeline(pipeline, tmp_path):
    pipeline.save_pretrained(tmp_path)
    loaded = CodLitePipeline.from_pretrained(tmp_path)
    assert type(loaded.transformer).__name__ == "CodLiteDenoiserModel" and loaded.vae is None
    assert loaded.scheduler.config.solver_order == 1  # Euler, the release's sampler
    for name, parameter in pipeline.transformer.state_dict().items():
        assert torch.equal(parameter, loaded.transformer.state_dict()[name]), name
    with pytest.raises(TypeError, match="CodPipeline takes a CodTransformer2DModel as its transformer, got CodLite"):
        CodPipeline.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="cod-lite-tiny is a configuration of CodLitePipeline, not of CodPipeline"):
        CodPipeline.from_named_config("cod-lite-tiny")


def test_cod_files_store_the_width_first_and_decompress_at_their_size(pipeline):
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    (cod_file,) = pipeline.compress(image)
    assert cod_file[:4] == (96).to_bytes(2, "little") + (64).to_bytes(2, "little")
    assert pipeline.parse_cod_file(cod_file)[:2] == (64, 96)
    output = pipeline.decompress(cod_file, num_inference_steps=2, output_type="pt")
    assert output.images.shape == (1, 3, 64, 96)


def test_the_velocity_is_the_x0_predictions_clamped_at_the_data_end(pipeline):
    sample = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    x0_hat = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    for sigma, divisor in ((0.5, 0.5), (0.01, 0.05)):
        velocity = pipeline.velocity_of_prediction(sample, torch.tensor(sigma), x0_hat)
        torch.testing.assert_close(velocity, (sample - x0_hat) / divisor)
