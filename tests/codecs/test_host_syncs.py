"""The coders' hot path reads nothing back from the device but what a step must send, and sums in a fixed order.

On a GPU every read of a device value on the host (`.item()`, `.tolist()`, `bool(tensor)`, a boolean-mask index)
waits for the device. These tests run on the CPU and count such reads per step, with the device-side paths switched
on (range checks asserted on the device, the PFR scan without its CPU-only early stop).
"""

import collections
import contextlib

import pytest
import torch

from cod_diffc.backbones import GaussianBackbone
from cod_diffc.codecs import load_codec, randomness
from cod_diffc.codecs.randomness import derive_key
from cod_diffc.diffc import DiffCSchedule, encode
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.channel_pooled import PooledPFRSimulator


# `.numpy()` is left out: it only works on host tensors (a device tensor needs `.cpu()` first, which is counted).
READ_METHODS = ("item", "tolist", "cpu", "__bool__", "__int__", "__float__", "__index__", "nonzero")
SCATTER_ADDS = ("index_add_", "index_add", "scatter_add_", "scatter_add", "index_put_")


def _is_mask(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(item, torch.Tensor) and item.dtype == torch.bool for item in items)


@contextlib.contextmanager
def counted(method_names, counts, only_masks=()):
    originals = {name: getattr(torch.Tensor, name) for name in (*method_names, *only_masks)}

    def make(name, original):
        def wrapper(self, *args, **kwargs):
            if name not in only_masks or _is_mask(args[0]):
                counts[name] += 1
            return original(self, *args, **kwargs)

        return wrapper

    for name, original in originals.items():
        setattr(torch.Tensor, name, make(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


@pytest.fixture
def device_paths(monkeypatch):
    """The paths the coders take on a GPU: device-side range checks, no early stop in the PFR scan."""

    def device_check(values, low, high, message):
        torch._assert_async(((values >= low) & (values <= high)).all(), message)

    monkeypatch.setattr(randomness, "check_in_range", device_check)
    monkeypatch.setattr(PooledPFRSimulator, "_stops_early", staticmethod(lambda device: False))


def host_reads(function, *args, **kwargs):
    """`(result, Counter of host reads)` of `function(*args, **kwargs)`."""
    counts = collections.Counter()
    with counted(READ_METHODS, counts, only_masks=("__getitem__", "__setitem__")):
        result = function(*args, **kwargs)
    return result, counts


def step_mu(kl_bits: float, dim: int = 4096, seed: int = 0) -> torch.Tensor:
    mu = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
    return mu / mu.norm() * (2 * kl_bits * torch.log(torch.tensor(2.0))).sqrt()


SIMULATORS = [PooledPFRSimulator(max_chunk_bits=10), PooledPFRSimulator(max_chunk_bits=8, pool_width=64)]
SIMULATORS += [ChunkedPFRSimulator(max_chunk_bits=8)]


@pytest.mark.parametrize("simulator", SIMULATORS, ids=repr)
@pytest.mark.parametrize("kl_bits", [0.0, 3.0, 300.0, 5000.0])
def test_a_coded_step_reads_back_its_kl_and_its_indices_only(device_paths, simulator, kl_bits):
    (code, _), reads = host_reads(simulator.encode, step_mu(kl_bits), derive_key(1, "step"))
    assert len(code.indices) == simulator.layout(code.kl_code).num_chunks
    # The KL decides the layout (one float), the indices are what the stream carries (one list).
    assert reads == collections.Counter({"item": 1, "tolist": 1} if code.indices else {"item": 1}), reads


@pytest.mark.parametrize("simulator", SIMULATORS, ids=repr)
def test_decoding_a_step_reads_nothing_back(device_paths, simulator):
    code, sample = simulator.encode(step_mu(300.0), derive_key(2, "step"))
    decoded, reads = host_reads(simulator.decode, code, 4096, derive_key(2, "step"))
    assert torch.equal(decoded, sample)
    assert not reads, reads


def test_a_diffc_encode_reads_two_values_a_step(device_paths):
    adapter = GaussianBackbone(std=0.5, patch_size=4)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    schedule = DiffCSchedule(num_steps=12)
    kwargs = {
        "stop_step": 12,
        "schedule": schedule,
        "simulator": PooledPFRSimulator(max_chunk_bits=8),
        "progress": False,
    }
    result, reads = host_reads(encode, image, adapter, **kwargs)
    num_steps = len(result.step_codes)
    # Per step: the coder's KL and indices; once per encode: the step KLs of the result and the set-up.
    assert reads["item"] <= num_steps + 2 and reads["tolist"] <= num_steps + 3, reads
    assert sum(reads.values()) - reads["item"] - reads["tolist"] <= 4, reads


@pytest.mark.parametrize("codec_name", ["turbo-ddcm", "ddcm"])
def test_a_ddcm_family_step_reads_back_only_its_chosen_atoms(device_paths, codec_name):
    adapter = GaussianBackbone(std=0.5, patch_size=4)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    result, reads = host_reads(load_codec(codec_name).encode, image, adapter, target_bpp=2.0, progress=False)
    assert result.stop_step > 0 and set(reads) == {"tolist"}, reads
    # Per coded step at most the chosen atoms' indices and their coefficients: what the stream carries.
    assert reads["tolist"] <= 2 * result.stop_step, (reads, result.stop_step)


@pytest.mark.parametrize("kl_bits", [3.0, 300.0, 5000.0])
def test_the_pfr_scan_chooses_the_same_with_and_without_its_early_stop(monkeypatch, kl_bits):
    simulator = PooledPFRSimulator(max_chunk_bits=10)
    key = derive_key(3, "step")
    early, _ = simulator.encode(step_mu(kl_bits, seed=1), key)
    monkeypatch.setattr(PooledPFRSimulator, "_stops_early", staticmethod(lambda device: False))
    assert simulator.encode(step_mu(kl_bits, seed=1), key)[0] == early


@pytest.mark.parametrize("simulator", SIMULATORS, ids=repr)
def test_no_scatter_add_on_the_score_path(simulator):
    """A scatter-add sums in the order a GPU's atomics land, so the same image could get different codes."""
    counts = collections.Counter()
    with counted(SCATTER_ADDS, counts):
        simulator.encode(step_mu(5000.0), derive_key(4, "step"))
    assert not counts, counts
