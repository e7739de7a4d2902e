"""DDP: two gloo processes on shards of the same global batch give the single-process parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from niso_geom.niso.autoencoder import NIsoAutoencoder
from niso_geom.niso.models import GridDecoder, GridEncoder
from niso_geom.niso.operator import LearnedOperator
from niso_geom.train import distributed, pretrain

GLOBAL_BATCH, STEPS, ACCUM = 4, 3, 2


class _Pairs:
    """The same sequence of global batches of (x, Tx) sphere images in every process."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.rng.standard_normal((GLOBAL_BATCH, 2, 8, 16)))
        return x, torch.roll(x, 2, dims=-1) + 0.1 * torch.from_numpy(self.rng.standard_normal(x.shape))


def _model() -> NIsoAutoencoder:
    torch.manual_seed(0)
    enc = GridEncoder(2, (4, 8), (1, 1), 4, "sphere", lift=4, sphere_grid="poles")
    dec = GridDecoder(4, (8, 4), (1, 1), 2, "sphere", sphere_grid="poles")
    op = LearnedOperator(32, 8)
    return NIsoAutoencoder(enc, dec, op, alpha=0.5, beta=0.01, latent_shape=(4, 8)).double()


def _train() -> dict[str, torch.Tensor]:
    model = _model()
    pretrain(model, _Pairs(), STEPS, lr=1e-2, warmup=0, accum=ACCUM, device="cpu", progress=False, amp="off")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        assert distributed.context() == distributed.DistContext(rank, world)
        torch.save(_train(), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_shard_splits_the_global_batch():
    ctx = distributed.DistContext(rank=1, world_size=2)
    x = torch.arange(8)
    (part,) = distributed.shard((x,), ctx)
    assert part.tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="does not split"):
        distributed.shard((torch.arange(5),), ctx)
    assert distributed.shard((x,), distributed.DistContext()) == (x,)


def test_two_gloo_processes_match_one_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    single = _train()
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    moved = 0.0
    for key, ref in single.items():
        for got in ranks:
            torch.testing.assert_close(got[key], ref, atol=1e-9, rtol=0, msg=key)
        moved = max(moved, float((ref - _model().state_dict()[key]).abs().max()))
    assert moved > 1e-3  # the parameters did train
