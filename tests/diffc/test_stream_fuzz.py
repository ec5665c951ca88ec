"""Decoding mutated streams: a decoder must raise `StreamError` or decode correctly, never fail another way, hang or
allocate memory sized by a corrupt field."""

import functools
import struct
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cod_diffc.backbones.gaussian import GaussianBackbone
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.codec import decode, encode
from cod_diffc.errors import StreamError


ADAPTER = GaussianBackbone(std=0.5)
MAX_LATENT_ELEMENTS = 3 * 16 * 16  # forged image sizes beyond this are refused before any allocation
POSITION = st.integers(min_value=0, max_value=2**16)

MUTATION = st.one_of(
    st.tuples(st.just("truncate"), POSITION),
    st.tuples(st.just("flip"), POSITION, st.integers(min_value=0, max_value=7)),
    st.tuples(st.just("overwrite"), POSITION, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("insert"), POSITION, st.binary(min_size=1, max_size=8)),
    # Splice: bytes [start, start + length) of another valid stream replace the same span of this one.
    st.tuples(
        st.just("splice"), st.integers(min_value=0, max_value=2), POSITION, st.integers(min_value=1, max_value=24)
    ),
)


@functools.cache
def valid_streams() -> tuple[tuple[bytes, torch.Tensor], ...]:
    """Three streams of one image (condition-only, 2 and 6 steps) and the latents they decode to."""
    image = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    result = encode(
        image,
        ADAPTER,
        stop_step=[0, 2, 6],
        schedule=DiffCSchedule(num_steps=8, t_end=0.1),
        simulator=ChunkedPFRSimulator(max_chunk_bits=8, padding_bits=2),
        progress=False,
    )
    return tuple((point.stream, point.latent) for point in result.points)


def mutate(data: bytes, mutations: list[tuple], fix_checksum: bool) -> bytes:
    mutated = bytearray(data)
    for kind, *arguments in mutations:
        position = arguments[-1] if kind == "splice" else arguments[0]
        if kind == "splice":
            donor = valid_streams()[arguments[0]][0]
            start = arguments[1] % len(donor)
            mutated[start : start + arguments[2]] = donor[start : start + arguments[2]]
            continue
        position %= len(mutated) + 1
        if kind == "truncate":
            del mutated[position:]
        elif kind == "flip" and position < len(mutated):
            mutated[position] ^= 1 << arguments[1]
        elif kind == "overwrite":
            mutated[position : position + len(arguments[1])] = arguments[1]
        elif kind == "insert":
            mutated[position:position] = arguments[1]
    if fix_checksum and len(mutated) > 4:
        # Forge the checksum so the mutation reaches the field checks and the rANS decoder behind it.
        mutated[-4:] = struct.pack("<I", zlib.crc32(bytes(mutated[:-4])))
    return bytes(mutated)


def check_mutated_stream(stream_index: int, mutations: list[tuple], fix_checksum: bool) -> None:
    original, original_latent = valid_streams()[stream_index]
    data = mutate(original, mutations, fix_checksum)
    try:
        decoded = decode(data, ADAPTER, max_latent_elements=MAX_LATENT_ELEMENTS, progress=False)
    except StreamError:
        return
    parsed = decoded.stream
    assert decoded.latent.shape == (1, *ADAPTER.latent_shape(parsed.height, parsed.width))
    assert torch.isfinite(decoded.latent).all()
    if data == original:
        assert torch.equal(decoded.latent, original_latent)


STREAM_INDEX = st.integers(min_value=0, max_value=2)
MUTATIONS = st.lists(MUTATION, min_size=1, max_size=3)


@pytest.mark.timeout(300)
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stream_index=STREAM_INDEX, mutations=MUTATIONS, fix_checksum=st.booleans())
def test_mutated_streams_raise_stream_error_or_decode(stream_index, mutations, fix_checksum):
    check_mutated_stream(stream_index, mutations, fix_checksum)


def test_unmutated_streams_decode_exactly():
    for stream, latent in valid_streams():
        assert torch.equal(decode(stream, ADAPTER, progress=False).latent, latent)


@pytest.mark.slow
def test_long_fuzz_session(record_property):
    tried = []

    @settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(stream_index=STREAM_INDEX, mutations=MUTATIONS, fix_checksum=st.booleans())
    def fuzz(stream_index, mutations, fix_checksum):
        tried.append(fix_checksum)
        check_mutated_stream(stream_index, mutations, fix_checksum)

    fuzz()
    record_property("streams_tried", len(tried))
    print(f"long fuzz session: {len(tried)} mutated streams decoded ({sum(tried)} with a forged checksum)")
    assert len(tried) >= 1000
