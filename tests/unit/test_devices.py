"""Device choice for the families that train outside Lightning, and the unpadded DDP evaluation sampler."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from recx.training import device_for, eval_sampler, to_device


@pytest.mark.parametrize("accelerator, expected", [("cpu", "cpu"), ("gpu", "cuda"), ("cuda", "cuda")])
def test_device_follows_the_hardware_group(accelerator, expected):
    assert device_for(OmegaConf.create({"accelerator": accelerator})).type == expected


def test_auto_means_cuda_only_when_there_is_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert device_for(OmegaConf.create({"accelerator": "auto"})).type == expected


def test_to_device_moves_tensors_and_keeps_the_rest():
    batch = {"x": torch.ones(2), "name": "q1"}
    assert to_device(batch, None) is batch
    moved = to_device(batch, torch.device("cpu"))
    assert moved["name"] == "q1" and torch.equal(moved["x"], batch["x"])


@pytest.mark.parametrize("n, world", [(301, 2), (7, 3), (1, 2), (10, 4)])
def test_ddp_evaluation_shares_cover_every_item_exactly_once(n, world):
    dataset = list(range(n))
    assert eval_sampler(dataset, None) is None
    assert eval_sampler(dataset, SimpleNamespace(world_size=1, global_rank=0)) is None
    shares = [list(eval_sampler(dataset, SimpleNamespace(world_size=world, global_rank=r))) for r in range(world)]
    assert sorted(i for share in shares for i in share) == dataset  # none repeated, none lost
    # Lightning's default (torch's DistributedSampler) would pad to equal shares, repeating items:
    padded = [list(torch.utils.data.DistributedSampler(dataset, num_replicas=world, rank=r, shuffle=False))
              for r in range(world)]
    assert sum(map(len, padded)) >= n and (sum(map(len, padded)) > n) == (n % world != 0)
