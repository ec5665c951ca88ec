import pytest
import torch

from cod_diffc.backbones.gaussian import GaussianBackbone
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc import channel_registry
from cod_diffc.diffc.bitstream import read_stream
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.channel_pooled import PooledPFRSimulator
from cod_diffc.diffc.channel_registry import (
    available_channels,
    channel_config,
    channel_from_config,
    get_channel_class,
    register_channel,
)
from cod_diffc.diffc.codec import decode, default_simulator, encode
from cod_diffc.errors import StreamError


class RenamedPFRSimulator(ChunkedPFRSimulator):
    """A coder outside the built-in table (the plain coder under another name)."""

    method = "renamed-pfr"


@pytest.fixture
def runtime_registry(monkeypatch):
    """Runtime registrations made by a test disappear after it."""
    monkeypatch.setattr(channel_registry.CHANNELS, "runtime", {})


def round_trip(simulator) -> tuple[bytes, torch.Tensor, torch.Tensor]:
    """A 4-step DiffC stream of a Gaussian image coded with `simulator`, the latent the encoder reached and the one
    a decoder told nothing but the stream reaches."""
    adapter = GaussianBackbone(std=0.3)
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    result = encode(
        image,
        adapter,
        stop_step=4,
        schedule=DiffCSchedule(num_steps=8, t_end=0.1),
        simulator=simulator,
        progress=False,
    )
    point = result.points[0]
    return point.stream, point.latent, decode(point.stream, adapter, progress=False).latent


class TestBuiltinConfigurations:
    def test_bytes_are_those_of_format_1(self):
        # Frozen: id, max_chunk_bits, padding_bits, kl_codes_per_octave, log2(max_kl_bits)[, pool_width].
        assert channel_config(default_simulator()) == bytes([1, 15, 2, 8, 24, 0x04, 0x00])
        assert channel_config(ChunkedPFRSimulator()) == bytes([0, 16, 2, 8, 24])

    def test_settings_round_trip(self):
        for simulator in (
            ChunkedPFRSimulator(max_chunk_bits=12, padding_bits=3, kl_codes_per_octave=4),
            PooledPFRSimulator(max_chunk_bits=18, padding_bits=8, pool_width=300),
        ):
            rebuilt = channel_from_config(channel_config(simulator))
            assert type(rebuilt) is type(simulator) and repr(rebuilt) == repr(simulator)

    @pytest.mark.parametrize(
        "config, message",
        [
            (b"\x01\x10\x02\x08\x18\x00\x00", "invalid channel.*pool_width must be"),
            (b"\x01\x10\x02\x08\x18", "invalid channel.*expected 6 bytes"),
            (b"\x00\x10\x02\x08\x18\x00", "invalid channel.*expected 4 bytes"),
            (b"\x00\x10\x10\x08\x18", "invalid channel.*padding_bits"),
            (b"\x00\x10\x02\x41\x18", "invalid channel.*kl_codes_per_octave 65"),
            (b"\x00\x10\x02\x08\x21", "invalid channel.*log2\\(max_kl_bits\\) 33"),
            (b"\x09\x10\x02\x08\x18", "unknown channel simulator id 9"),
            (b"", "empty channel"),
        ],
    )
    def test_invalid_configurations_are_refused(self, config, message):
        with pytest.raises(StreamError, match=message):
            channel_from_config(config)

    def test_settings_the_format_cannot_store_are_refused(self):
        with pytest.raises(ValueError, match="power of two"):
            channel_config(ChunkedPFRSimulator(max_kl_bits=1000.0))
        with pytest.raises(ValueError, match="kl_codes_per_octave <= 64"):
            channel_config(ChunkedPFRSimulator(kl_codes_per_octave=65))


class TestRuntimeRegistration:
    def test_unregistered_coder_is_refused_before_coding(self):
        with pytest.raises(ValueError, match="RenamedPFRSimulator.*not a registered channel coder.*register_channel"):
            round_trip(RenamedPFRSimulator(max_chunk_bits=8))

    def test_subclass_of_a_builtin_is_not_stored_as_the_builtin(self):
        class Impostor(PooledPFRSimulator):  # inherits method "pooled_pfr", but is another class
            pass

        with pytest.raises(ValueError, match="Impostor.*not a registered channel coder"):
            channel_config(Impostor())

    def test_registered_coder_is_stored_by_name_and_rebuilt_by_the_decoder(self, runtime_registry):
        register_channel("renamed-pfr", RenamedPFRSimulator)
        assert "renamed-pfr" in available_channels()
        simulator = RenamedPFRSimulator(max_chunk_bits=8, padding_bits=3)
        config = channel_config(simulator)
        assert config == bytes([255, 11]) + b"renamed-pfr" + bytes([8, 3, 8, 24])
        rebuilt = channel_from_config(config)
        assert type(rebuilt) is RenamedPFRSimulator and repr(rebuilt) == repr(simulator)

        stream, encoder_latent, decoder_latent = round_trip(simulator)
        assert read_stream(stream).channel == config
        assert torch.equal(decoder_latent, encoder_latent)

    def test_stream_of_a_coder_not_installed_names_it(self, runtime_registry, monkeypatch):
        register_channel("renamed-pfr", RenamedPFRSimulator)
        stream, _, _ = round_trip(RenamedPFRSimulator(max_chunk_bits=8))
        monkeypatch.setattr(channel_registry.CHANNELS, "runtime", {})
        with pytest.raises(StreamError, match="channel coder 'renamed-pfr', which is not installed.*chunked_pfr"):
            decode(stream, GaussianBackbone(std=0.3), progress=False)

    @pytest.mark.parametrize(
        "config, message",
        [
            (bytes([255, 10]) + b"pooled_pfr" + bytes([15, 2, 8, 24, 4, 0]), "names built-in 'pooled_pfr'"),
            (bytes([255, 3]) + b"B d" + bytes([8, 3, 8, 24]), "invalid channel coder name"),
            (bytes([255]), "invalid channel coder name ''"),
            (bytes([255, 11]) + b"renamed-pfr" + bytes([8, 3, 8, 24, 0]), "invalid channel.*expected 4 bytes"),
        ],
    )
    def test_forged_named_configurations_are_refused(self, runtime_registry, config, message):
        register_channel("renamed-pfr", RenamedPFRSimulator)
        with pytest.raises(StreamError, match=message):
            channel_from_config(config)

    def test_any_failure_of_a_plugin_on_forged_settings_is_a_stream_error(self, runtime_registry):
        class Fragile(ChunkedPFRSimulator):
            method = "fragile"

            @classmethod
            def from_settings_bytes(cls, settings):
                return cls(max_chunk_bits=settings[7])  # IndexError on short settings

        register_channel("fragile", Fragile)
        with pytest.raises(StreamError, match="invalid channel simulator configuration .*\\(fragile\\)"):
            channel_from_config(bytes([255, 7]) + b"fragile" + bytes([8, 2, 8, 24]))

    def test_settings_a_plugin_ignores_make_the_configuration_refused(self, runtime_registry):
        class Lenient(ChunkedPFRSimulator):
            method = "lenient"

            @classmethod
            def from_settings_bytes(cls, settings):
                return super().from_settings_bytes(settings[:4])  # ignores anything after its 4 bytes

        register_channel("lenient", Lenient)
        assert type(channel_from_config(bytes([255, 7]) + b"lenient" + bytes([8, 2, 8, 24]))) is Lenient
        with pytest.raises(StreamError, match="is not the one Lenient"):
            channel_from_config(bytes([255, 7]) + b"lenient" + bytes([8, 2, 8, 24, 99]))

    def test_broken_plugins_do_not_stop_the_builtins(self, monkeypatch):
        def clash():
            raise ValueError("two installed entry points claim channel coder 'x'")

        monkeypatch.setattr(channel_registry.CHANNELS, "entry_points", clash)
        config = channel_config(default_simulator())
        assert type(channel_from_config(config)) is PooledPFRSimulator
        with pytest.raises(StreamError, match="cannot look up channel coder 'renamed-pfr': two installed"):
            channel_from_config(bytes([255, 11]) + b"renamed-pfr" + bytes([8, 3, 8, 24]))

    def test_registration_checks_the_class_and_the_name(self, runtime_registry):
        with pytest.raises(ValueError, match="already registered"):
            register_channel("chunked_pfr", ChunkedPFRSimulator)
        with pytest.raises(ValueError, match="has method 'renamed-pfr', not 'other'"):
            register_channel("other", RenamedPFRSimulator)
        with pytest.raises(ValueError, match="must be a ChannelSimulator subclass"):
            register_channel("renamed-pfr", object)
        with pytest.raises(ValueError, match="unknown channel coder 'nope'; available channel coders"):
            get_channel_class("nope")


class TestEntryPoints:
    def test_installed_coder_codes_streams_its_own_way(self, installed_plugin):
        assert "toy-salted-pfr" in available_channels()
        salted = get_channel_class("toy-salted-pfr")
        assert salted.__module__ == "toy_salted_channel"

        first, first_latent, first_decoded = round_trip(salted(salt=1))
        assert type(channel_from_config(read_stream(first).channel)) is salted
        assert torch.equal(first_decoded, first_latent)
        # The salt is a setting the stream carries: another salt draws other candidates, hence other codes.
        second, second_latent, second_decoded = round_trip(salted(salt=2))
        assert torch.equal(second_decoded, second_latent)
        assert read_stream(first).step_codes != read_stream(second).step_codes
