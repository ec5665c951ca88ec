import pytest
import torch
from torch import nn

from cod_diffc.backbones import (
    FINGERPRINT_SIZE,
    UNCONDITIONAL,
    BackboneAdapter,
    Condition,
    FlowMatchingAdapterMixin,
    fingerprint_state_dict,
)
from cod_diffc.backbones.gaussian import GaussianBackbone
from cod_diffc.errors import StreamError


class AnalyticFlowBackbone(FlowMatchingAdapterMixin, GaussianBackbone):
    """Gaussian data seen as a flow-matching model: its velocity is built from the analytic x0 and eps in flow
    space, and the mixin must convert it back to the same VP predictions."""

    def predict_velocity(
        self, x_flow: torch.Tensor, s: torch.Tensor, condition, guidance_scale: float
    ) -> torch.Tensor:
        # E[x0 | x_flow] and E[eps | x_flow] for x_flow = (1 - s) x0 + s eps, derived directly in flow space.
        s = s.reshape(-1, 1, 1, 1) if s.ndim == 1 else s
        variance = (1 - s) ** 2 * self.std**2 + s**2
        residual = x_flow - (1 - s) * self.mean
        x0_hat = self.mean + (1 - s) * self.std**2 / variance * residual
        eps_hat = s / variance * residual
        return eps_hat - x0_hat


class NoiseOnlyBackbone(GaussianBackbone):
    """Implements only predict_epsilon, so x0_hat comes from the base class's conversion."""

    predict_x0_and_epsilon = BackboneAdapter.predict_x0_and_epsilon


@pytest.fixture
def noisy_latent() -> torch.Tensor:
    return torch.randn(1, 3, 4, 5, generator=torch.Generator().manual_seed(0))


class TestFlowMatchingAdapterMixin:
    @pytest.mark.parametrize("t", [1.0, 0.9, 0.5, 0.1, 0.01])
    def test_predictions_match_the_analytic_vp_ones(self, noisy_latent, t):
        flow, analytic = AnalyticFlowBackbone(mean=0.2, std=0.7), GaussianBackbone(mean=0.2, std=0.7)
        time = torch.tensor(t)
        flow_x0, flow_eps = flow.predict_x0_and_epsilon(noisy_latent, time, UNCONDITIONAL, 1.0)
        analytic_x0, analytic_eps = analytic.predict_x0_and_epsilon(noisy_latent, time, UNCONDITIONAL, 1.0)
        torch.testing.assert_close(flow_eps, analytic_eps, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(flow_x0, analytic_x0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(flow.predict_epsilon(noisy_latent, time, UNCONDITIONAL, 1.0), flow_eps)

    def test_alpha_sigma_is_variance_preserving_and_ends_at_noise_and_data(self):
        t = torch.linspace(0, 1, 11, dtype=torch.float64)
        alpha, sigma = AnalyticFlowBackbone().alpha_sigma(t)
        torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t))
        assert (alpha[0].item(), sigma[0].item()) == (1.0, 0.0)
        assert (alpha[-1].item(), sigma[-1].item()) == (0.0, 1.0)
        assert torch.all(alpha.diff() < 0)

    def test_batched_times_broadcast_per_sample(self):
        flow = AnalyticFlowBackbone(std=0.5)
        latents = torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(1))
        times = torch.tensor([0.3, 0.8])
        x0, eps = flow.predict_x0_and_epsilon(latents, times, UNCONDITIONAL, 1.0)
        for index in range(2):
            single_x0, single_eps = flow.predict_x0_and_epsilon(
                latents[index : index + 1], times[index], UNCONDITIONAL, 1.0
            )
            torch.testing.assert_close(x0[index : index + 1], single_x0)
            torch.testing.assert_close(eps[index : index + 1], single_eps)

    def test_subclass_without_predict_velocity_is_abstract(self):
        class Incomplete(FlowMatchingAdapterMixin, GaussianBackbone):
            pass

        with pytest.raises(TypeError, match="predict_velocity"):
            Incomplete()


class TestBackboneAdapter:
    def test_default_x0_prediction_inverts_the_forward_process(self, noisy_latent):
        time = torch.tensor(0.4)
        x0, eps = NoiseOnlyBackbone(std=0.5).predict_x0_and_epsilon(noisy_latent, time, UNCONDITIONAL, 1.0)
        expected_x0, expected_eps = GaussianBackbone(std=0.5).predict_x0_and_epsilon(
            noisy_latent, time, UNCONDITIONAL, 1.0
        )
        torch.testing.assert_close(x0, expected_x0)
        torch.testing.assert_close(eps, expected_eps)

    def test_default_x0_prediction_refuses_alpha_zero(self, noisy_latent):
        with pytest.raises(ValueError, match="alpha"):
            NoiseOnlyBackbone().predict_x0_and_epsilon(noisy_latent, torch.tensor(1.0), UNCONDITIONAL, 1.0)

    def test_conditionless_backbone_sends_no_side_information(self):
        backbone = GaussianBackbone()
        assert backbone.prepare_condition(torch.zeros(1, 3, 4, 4)) == UNCONDITIONAL == Condition(b"", None)
        assert backbone.load_condition(b"", 4, 4) == UNCONDITIONAL
        with pytest.raises(StreamError, match="takes no side information"):
            backbone.load_condition(b"\x00", 4, 4)

    def test_incomplete_adapter_cannot_be_instantiated(self):
        class NoFingerprint(BackboneAdapter):
            name = "incomplete"

        with pytest.raises(TypeError, match="fingerprint"):
            NoFingerprint()


class TestGaussianBackbone:
    def test_epsilon_prediction_is_the_posterior_mean(self):
        # Orthogonality principle: the MMSE error eps - eps_hat is uncorrelated with z_t, and eps_hat is unbiased.
        backbone, generator = GaussianBackbone(mean=0.3, std=0.6), torch.Generator().manual_seed(2)
        data = 0.3 + 0.6 * torch.randn(1, 1, 200, 1000, generator=generator, dtype=torch.float64)
        noise = torch.randn(data.shape, generator=generator, dtype=torch.float64)
        time = torch.tensor(0.5, dtype=torch.float64)
        alpha, sigma = backbone.alpha_sigma(time)
        noisy = alpha * data + sigma * noise
        x0_hat, eps_hat = backbone.predict_x0_and_epsilon(noisy, time, UNCONDITIONAL, 1.0)
        assert abs(((noise - eps_hat) * noisy).mean().item()) < 0.01
        assert abs((noise - eps_hat).mean().item()) < 0.01
        assert ((data - x0_hat) ** 2).mean().item() == pytest.approx(backbone.posterior_mse(0.5), rel=0.02)

    def test_image_latent_round_trip(self):
        backbone = GaussianBackbone(patch_size=2)
        image = torch.rand(1, 3, 2, 4, generator=torch.Generator().manual_seed(3)).repeat_interleave(2, dim=2)
        image = image.repeat_interleave(2, dim=3)  # constant 2x2 patches: exactly representable
        latent = backbone.encode_image(image)
        assert latent.shape == (1, *backbone.latent_shape(4, 8)) == (1, 3, 2, 4)
        torch.testing.assert_close(backbone.decode_latent(latent), image)

    def test_latent_shape_rejects_sizes_off_the_patch_grid(self):
        with pytest.raises(ValueError, match="patch_size 4"):
            GaussianBackbone(patch_size=4).latent_shape(30, 32)

    @pytest.mark.parametrize("settings", [{"std": 0.0}, {"mean": float("nan")}, {"patch_size": 0}])
    def test_invalid_settings(self, settings):
        with pytest.raises(ValueError):
            GaussianBackbone(**settings)

    def test_fingerprint_depends_on_the_settings_only(self):
        assert GaussianBackbone(std=0.5).fingerprint() == GaussianBackbone(std=0.5).fingerprint()
        assert GaussianBackbone(std=0.5).fingerprint() != GaussianBackbone(std=0.6).fingerprint()
        assert len(GaussianBackbone().fingerprint()) == FINGERPRINT_SIZE


class TestFingerprintStateDict:
    def make_module(self) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))

    def test_module_and_state_dict_agree_and_key_order_does_not_matter(self):
        module = self.make_module()
        state_dict = module.state_dict()
        reversed_state_dict = dict(reversed(list(state_dict.items())))
        assert fingerprint_state_dict(module) == fingerprint_state_dict(reversed_state_dict)
        assert len(fingerprint_state_dict(module)) == FINGERPRINT_SIZE

    def test_one_changed_weight_bit_changes_the_fingerprint(self):
        module = self.make_module()
        before = fingerprint_state_dict(module)
        with torch.no_grad():
            module[0].weight[0, 0] = torch.nextafter(module[0].weight[0, 0], torch.tensor(1.0))
        assert fingerprint_state_dict(module) != before

    def test_dtype_and_config_change_the_fingerprint(self):
        module = self.make_module()
        reference = fingerprint_state_dict(module)
        assert fingerprint_state_dict(module.to(torch.bfloat16)) != reference
        assert fingerprint_state_dict(self.make_module(), config={"scale": 1}) != reference
        assert fingerprint_state_dict(self.make_module(), config={"scale": 1}) == fingerprint_state_dict(
            self.make_module(), config={"scale": 1}
        )

    def test_known_digest_is_stable(self):
        state_dict = {"b": torch.arange(3, dtype=torch.int32), "a": torch.tensor([1.5, -2.0])}
        # Computed once from the documented scheme; a change here breaks every stream written before it.
        assert fingerprint_state_dict(state_dict).hex() == "0f8f15608fccd0c9"
