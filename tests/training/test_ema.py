import pytest
import torch
from torch import nn

from cod_diffc.training.ema import ExponentialMovingAverage


def module_at(value: float) -> nn.Linear:
    module = nn.Linear(2, 2)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.fill_(value)
    return module


def test_an_update_moves_the_shadow_by_one_minus_the_decay():
    module = module_at(0.0)
    ema = ExponentialMovingAverage(module, decay=0.9)
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema.update(1)
    torch.testing.assert_close(ema.state_dict()["weight"], torch.full((2, 2), 0.1))
    torch.testing.assert_close(ema.state_dict()["bias"], torch.zeros(2))


def test_the_warmup_ramps_the_decay_up_to_its_cap():
    ema = ExponentialMovingAverage(module_at(0.0), decay=0.999, warmup=True)
    assert ema.decay_at(1) == pytest.approx(2 / 11)
    assert ema.decay_at(400) == pytest.approx(401 / 410)
    assert ema.decay_at(100_000) == 0.999
    assert ExponentialMovingAverage(module_at(0.0), decay=0.999).decay_at(1) == 0.999


@pytest.mark.parametrize(("warmup", "initial_share"), [(False, 0.67), (True, 0.0)])
def test_after_400_updates_the_warmup_has_forgotten_the_initialisation(warmup, initial_share):
    module = module_at(0.0)
    ema = ExponentialMovingAverage(module, decay=0.999, warmup=warmup)
    with torch.no_grad():
        module.weight.fill_(1.0)
    for update in range(1, 401):
        ema.update(update)
    remaining = 1.0 - float(ema.state_dict()["weight"][0, 0])  # the initial weights' share of the average
    assert remaining == pytest.approx(initial_share, abs=0.01)
