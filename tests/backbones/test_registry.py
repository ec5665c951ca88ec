import sys
from pathlib import Path

import pytest
import torch

from cod_diffc.backbones import registry
from cod_diffc.backbones.gaussian import GaussianBackbone, load_gaussian_backbone
from cod_diffc.backbones.registry import (
    BUILTIN_BACKBONES,
    available_backbones,
    get_backbone_factory,
    load_backbone,
    register_backbone,
)
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.codec import decode, encode


@pytest.fixture
def runtime_registry(monkeypatch):
    """Runtime registrations made by a test disappear after it."""
    monkeypatch.setattr(registry.BACKBONES, "runtime", {})


def constant_factory(model=None, *, device="cpu", dtype=None, **options):
    return GaussianBackbone(device=device, **options)


class TestBuiltins:
    def test_gaussian_is_available_and_loads_with_options(self):
        assert "gaussian" in available_backbones()
        adapter = load_backbone("gaussian", std=0.5, patch_size=2)
        assert isinstance(adapter, GaussianBackbone)
        assert (adapter.name, adapter.std, adapter.patch_size) == ("gaussian", 0.5, 2)

    def test_builtins_are_lazy_module_strings(self):
        assert all(isinstance(target, str) and ":" in target for target in BUILTIN_BACKBONES.values())
        assert get_backbone_factory("gaussian") is load_gaussian_backbone

    def test_unknown_name_lists_the_available_backbones(self):
        with pytest.raises(ValueError, match="unknown backbone 'nope'; available backbones: .*gaussian"):
            load_backbone("nope")

    def test_gaussian_factory_rejects_weights_and_other_dtypes(self):
        with pytest.raises(ValueError, match="no weights"):
            load_backbone("gaussian", model="some/path")
        with pytest.raises(ValueError, match="float32"):
            load_backbone("gaussian", dtype=torch.float16)

    def test_unknown_options_are_refused_with_the_accepted_ones(self):
        with pytest.raises(ValueError, match="'gaussian' has no option 'sdt'; it takes 'mean', 'std', 'patch_size'"):
            load_backbone("gaussian", sdt=0.5)


class TestRuntimeRegistration:
    def test_registered_factory_is_loaded_by_name(self, runtime_registry):
        class Named(GaussianBackbone):
            name = "my-gaussian"

        register_backbone("my-gaussian", lambda model=None, **kwargs: Named())
        assert "my-gaussian" in available_backbones()
        assert isinstance(load_backbone("my-gaussian"), Named)

    def test_name_clash_with_a_builtin_is_refused(self, runtime_registry):
        with pytest.raises(ValueError, match="'gaussian' is already registered"):
            register_backbone("gaussian", constant_factory)

    @pytest.mark.parametrize("name", ["", "Upper", "with space", "-leading", "x" * 65])
    def test_invalid_names_are_refused(self, runtime_registry, name):
        with pytest.raises(ValueError, match="invalid backbone name"):
            register_backbone(name, constant_factory)

    def test_adapter_name_must_match_the_registry_name(self, runtime_registry):
        register_backbone("mislabelled", constant_factory)
        with pytest.raises(ValueError, match="built an adapter named 'gaussian'"):
            load_backbone("mislabelled")

    def test_factory_must_build_an_adapter(self, runtime_registry):
        register_backbone("not-an-adapter", lambda model=None, **kwargs: object())
        with pytest.raises(ValueError, match="not a BackboneAdapter"):
            load_backbone("not-an-adapter")


class TestEntryPoints:
    def test_plugin_is_not_visible_before_installation(self):
        assert "toy-flow" not in available_backbones()

    def test_installed_plugin_is_found_and_codes_a_stream(self, installed_plugin):
        assert "toy-flow" in available_backbones()
        adapter = load_backbone("toy-flow")
        assert type(adapter).__module__ == "toy_flow_backbone"
        assert Path(sys.modules["toy_flow_backbone"].__file__).is_relative_to(installed_plugin)

        image = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
        result = encode(
            image,
            adapter,
            stop_step=4,
            schedule=DiffCSchedule(num_steps=8, t_end=0.1),
            simulator=ChunkedPFRSimulator(max_chunk_bits=8, padding_bits=2),
            progress=False,
        )
        point = result.points[0]
        decoder_side = load_backbone("toy-flow")  # a fresh adapter: the condition comes from the stream
        decoded = decode(point.stream, decoder_side, progress=False)
        assert torch.equal(decoded.latent, point.latent)
        torch.testing.assert_close(decoded.condition.value, result.condition.value)

    def test_plugin_clashing_with_a_builtin_is_an_error_naming_both(self, installed_plugin, monkeypatch):
        monkeypatch.setitem(BUILTIN_BACKBONES, "toy-flow", "cod_diffc.backbones.gaussian:load_gaussian_backbone")
        with pytest.raises(ValueError, match="toy_flow_backbone:load_toy_flow_backbone.*clashes.*gaussian_backbone"):
            available_backbones()
