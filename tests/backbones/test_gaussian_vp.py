"""The `gaussian-vp` backbone: the exact Gaussian denoiser served through DiscreteVPAdapterMixin, so its conversions
and time map are checked against closed forms."""

import pytest
import torch

from cod_diffc.backbones.gaussian import GaussianVPBackbone
from cod_diffc.backbones.registry import load_backbone


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("t", [0.0, 0.123456, 0.5, 0.999, 1.0])  # fractional training timesteps in between
def test_the_mixin_recovers_the_exact_posterior_from_every_prediction_type(prediction_type, t):
    backbone = GaussianVPBackbone(mean=0.1, std=0.3, prediction_type=prediction_type)
    z_t = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    time = torch.tensor(t)
    alpha, sigma = (float(c) for c in backbone.alpha_sigma(time.double()))
    variance = alpha**2 * 0.3**2 + sigma**2
    expected_x0 = 0.1 + alpha * 0.3**2 / variance * (z_t - alpha * 0.1)
    expected_epsilon = sigma / variance * (z_t - alpha * 0.1)
    x0, epsilon = backbone.predict_x0_and_epsilon(z_t, time, None, 1.0)
    torch.testing.assert_close(x0, expected_x0, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(epsilon, expected_epsilon, rtol=1e-4, atol=1e-5)


def test_it_loads_by_name_and_each_prediction_type_is_another_model():
    backbones = [load_backbone("gaussian-vp", std=0.3, prediction_type=kind) for kind in ("epsilon", "v_prediction")]
    assert backbones[0].name == "gaussian-vp" and backbones[1].prediction_type == "v_prediction"
    assert backbones[0].fingerprint() != backbones[1].fingerprint()
    assert backbones[0].posterior_mse(0.5) < 0.3**2  # the Gaussian backbone's closed forms, on the VP times
    with pytest.raises(ValueError, match="has no weights"):
        load_backbone("gaussian-vp", "some/model")
