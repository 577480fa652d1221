"""Process-group set-up for ``torchrun`` (DDP only: nccl on GPUs, gloo on CPUs) and cross-rank averages."""

from __future__ import annotations

import logging
import os

import torch
import torch.distributed as torch_dist

from infomug import dist

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda"``; under ``torchrun`` each process
    takes the GPU of its ``LOCAL_RANK``.

    Raises:
        ValueError: for an unknown name, or ``"cuda"`` on a machine without CUDA.
    """
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked, but CUDA is not available here: use cpu or auto")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: torch.device) -> bool:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1).

    Uses nccl for a CUDA device and gloo otherwise. Returns True if this call created the group (the
    caller then destroys it with `shutdown_distributed`); False on one process or when a group exists.
    """
    if dist.is_distributed() or int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch_dist.init_process_group("nccl", device_id=device)
    else:
        torch_dist.init_process_group("gloo")
    logger.info("process %d of %d joined (%s)", dist.rank(), dist.world_size(), torch_dist.get_backend())
    return True


def shutdown_distributed() -> None:
    """Leave and destroy the process group, if there is one."""
    if dist.is_distributed():
        torch_dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op on one)."""
    if dist.is_distributed():
        torch_dist.barrier()


def mean_across_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average each scalar over processes (one all-reduce for all of them); identity on one process."""
    if not dist.is_distributed() or not values:
        return dict(values)
    names = sorted(values)
    packed = torch.tensor([values[name] for name in names], dtype=torch.float64, device=device)
    torch_dist.all_reduce(packed)
    packed /= dist.world_size()
    return dict(zip(names, packed.tolist(), strict=True))


def max_across_processes(values: list[float], device: torch.device) -> list[float]:
    """The element-wise maximum of ``values`` over processes (one all-reduce); identity on one process.

    A flag raised on any process (1.0 against 0.0) is thus raised on all: they agree on what to do next.
    """
    if not dist.is_distributed():
        return list(values)
    packed = torch.tensor(values, dtype=torch.float64, device=device)
    torch_dist.all_reduce(packed, op=torch_dist.ReduceOp.MAX)
    return packed.tolist()
