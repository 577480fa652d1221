"""Process-group helpers: identity on one process; a 2-process gloo run matches the concatenated batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from infomug import dist as infomug_dist
from infomug.objectives import clip_loss, nt_xent_loss

WORLD, BATCH, DIM = 2, 3, 5


def global_features():
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(WORLD * BATCH, DIM, generator=generator) for _ in range(2)]


def test_single_process_is_the_identity():
    x = torch.randn(4, 3)
    assert infomug_dist.gather_with_grad(x) is x
    assert (infomug_dist.rank(), infomug_dist.world_size(), infomug_dist.is_distributed()) == (0, 1, False)
    assert infomug_dist.is_main_process()
    with pytest.raises(ValueError, match="batch dimension"):
        infomug_dist.gather_with_grad(torch.tensor(1.0))


def _worker(rank, store, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        a_all, b_all = global_features()
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        results = {"rank": infomug_dist.rank(), "world": infomug_dist.world_size()}
        a = a_all[rows].clone().requires_grad_(True)
        gathered = infomug_dist.gather_with_grad(a)
        results["gathered"] = gathered.detach()
        for name, loss_fn in (
            ("clip", lambda x, y: clip_loss(x, y, torch.tensor(3.0))),
            ("ntxent", nt_xent_loss),
        ):
            a = a_all[rows].clone().requires_grad_(True)
            b = b_all[rows].clone().requires_grad_(True)
            loss = loss_fn(a, b)
            loss.backward()
            results[name] = (loss.detach(), a.grad, b.grad)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_the_single_process_reference(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    a_all, b_all = global_features()
    for rank, result in enumerate(results):
        assert (result["rank"], result["world"]) == (rank, WORLD)
        assert torch.equal(result["gathered"], a_all)
    for name, loss_fn in (
        ("clip", lambda x, y: clip_loss(x, y, torch.tensor(3.0))),
        ("ntxent", nt_xent_loss),
    ):
        a, b = a_all.clone().requires_grad_(True), b_all.clone().requires_grad_(True)
        full = loss_fn(a, b)
        full.backward()
        # Each process's loss is the mean over its own rows, so their mean is the full-batch loss; the
        # gather's backward sums every process's gradient onto each one's rows: WORLD x the full gradient.
        local = torch.stack([result[name][0] for result in results])
        torch.testing.assert_close(local.mean(), full.detach())
        for rank, result in enumerate(results):
            rows = slice(rank * BATCH, (rank + 1) * BATCH)
            torch.testing.assert_close(result[name][1], WORLD * a.grad[rows])
            torch.testing.assert_close(result[name][2], WORLD * b.grad[rows])
