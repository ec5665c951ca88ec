import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cod_diffc.diffc.channel import ChunkedPFRSimulator, StepCode
from cod_diffc.diffc.index_coding import StepCodeWriter, decode_step_codes, encode_step_codes
from cod_diffc.errors import StreamError


SIMULATOR = ChunkedPFRSimulator()


def _random_codes(num_steps: int, seed: int, zipf: bool) -> list[StepCode]:
    """Step codes along a drifting kl_code; indices Zipf-distributed (as the model assumes) or uniform."""
    rng = np.random.default_rng(seed)
    codes = []
    kl_code = 40
    for _ in range(num_steps):
        kl_code = int(np.clip(kl_code + rng.integers(-2, 3), 0, 90))
        layout = SIMULATOR.layout(kl_code)
        indices = []
        for chunk in range(layout.num_chunks):
            num_candidates = 2 ** layout.candidate_bits(chunk)
            if zipf:
                weights = np.arange(1, num_candidates + 1, dtype=np.float64) ** -layout.zipf_exponent
                indices.append(int(rng.choice(num_candidates, p=weights / weights.sum())))
            else:
                indices.append(int(rng.integers(num_candidates)))
        codes.append(StepCode(kl_code, tuple(indices)))
    return codes


def _assert_valid(codes: list[StepCode], num_steps: int):
    assert len(codes) == num_steps
    for code in codes:
        SIMULATOR.check_code(code)


class TestIndexCoding:
    def test_round_trip(self):
        codes = _random_codes(200, seed=0, zipf=False)
        # Extremes: the largest index of a 2**16-candidate chunk, index 0, a step with no chunk.
        largest = SIMULATOR.kl_code_for(13.5, 100)
        assert SIMULATOR.layout(largest).candidate_bits(0) == 16
        codes += [StepCode(largest, (2**16 - 1,)), StepCode(largest, (0,)), StepCode(0, ())]
        data = encode_step_codes(codes, SIMULATOR)
        assert decode_step_codes(data, len(codes), SIMULATOR) == codes
        # The stream is progressive: any prefix of the steps decodes from the same bytes.
        assert decode_step_codes(data, 17, SIMULATOR) == codes[:17]

    def test_coded_size_is_close_to_the_ideal_zipf_length(self):
        codes = _random_codes(150, seed=1, zipf=True)
        num_chunks = sum(len(code.indices) for code in codes)
        ideal_bits = SIMULATOR.code_length_bits(codes)
        coded_bits = 8 * len(encode_step_codes(codes, SIMULATOR))
        # Margin: <= 0.03 bits per chunk for the uniform low bits, CDF quantisation, the 64-bit final rANS state.
        assert ideal_bits - 64 < coded_bits <= 1.01 * ideal_bits + 0.05 * num_chunks + 64

    def test_no_steps(self):
        assert encode_step_codes([], SIMULATOR) == b""
        assert decode_step_codes(b"", 0, SIMULATOR) == []

    def test_encode_rejects_invalid_codes(self):
        with pytest.raises(ValueError, match="out of range"):
            encode_step_codes([StepCode(30, (2**16,))], SIMULATOR)
        with pytest.raises(ValueError, match="chunks"):
            encode_step_codes([StepCode(30, ())], SIMULATOR)

    def test_decode_rejects_impossible_step_counts(self):
        with pytest.raises(StreamError):
            decode_step_codes(b"\x00" * 4, 1000, SIMULATOR)
        with pytest.raises(ValueError):
            decode_step_codes(b"\x00" * 4, -1, SIMULATOR)

    def test_truncated_streams_raise_or_decode_valid_codes(self):
        codes = _random_codes(30, seed=2, zipf=True)
        data = encode_step_codes(codes, SIMULATOR)
        for cut in range(len(data)):
            try:
                decoded = decode_step_codes(data[:cut], len(codes), SIMULATOR)
            except StreamError:
                continue
            _assert_valid(decoded, len(codes))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.binary(max_size=64), num_steps=st.integers(1, 40))
    def test_garbage_raises_or_decodes_valid_codes(self, data, num_steps):
        try:
            decoded = decode_step_codes(data, num_steps, SIMULATOR)
        except StreamError:
            return
        _assert_valid(decoded, num_steps)

    def test_flipped_bytes_raise_or_decode_valid_codes(self):
        data = bytearray(encode_step_codes(_random_codes(20, seed=3, zipf=True), SIMULATOR))
        rng = random.Random(0)
        for _ in range(100):
            corrupted = bytearray(data)
            corrupted[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            try:
                decoded = decode_step_codes(bytes(corrupted), 20, SIMULATOR)
            except StreamError:
                continue
            _assert_valid(decoded, 20)


@pytest.mark.parametrize("num_steps", [1, 2, 3])
def test_streams_of_very_few_symbols_round_trip(num_steps):
    # CompressAI's rANS encoder overruns its output buffer when flushing fewer than 4 symbols; the coder pads them.
    simulator = ChunkedPFRSimulator()
    codes = [StepCode(0, ())] * num_steps
    data = encode_step_codes(codes, simulator)
    assert decode_step_codes(data, num_steps, simulator) == codes


class TestStepCodeWriter:
    @pytest.mark.parametrize("zipf", [True, False])
    def test_every_prefix_is_what_encode_step_codes_gives_and_fits_its_bound(self, zipf):
        codes = _random_codes(40, seed=3, zipf=zipf)
        codes.insert(5, StepCode(0, ()))  # a step that sends nothing
        writer = StepCodeWriter(SIMULATOR)
        for code in codes:
            writer.append(code)
        for num_steps in range(len(codes) + 1):
            coded = writer.to_bytes(num_steps)
            assert coded == encode_step_codes(codes[:num_steps], SIMULATOR)
            # The bound is what rANS spends on the symbols plus its 8-byte state and a word of slack.
            assert len(coded) <= writer.max_bytes(num_steps) <= len(coded) + 12

    @given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.booleans())
    @settings(max_examples=40, deadline=None)
    def test_the_bound_holds_for_any_codes(self, seed, num_steps, zipf):
        codes = _random_codes(num_steps, seed=seed, zipf=zipf)
        writer = StepCodeWriter(SIMULATOR)
        for code in codes:
            writer.append(code)
        assert len(writer.to_bytes()) <= writer.max_bytes(num_steps)

    def test_prefixes_outside_the_steps_are_refused(self):
        writer = StepCodeWriter(SIMULATOR)
        writer.append(StepCode(0, ()))
        with pytest.raises(ValueError, match="outside"):
            writer.to_bytes(2)
