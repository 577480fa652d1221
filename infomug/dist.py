"""Process-group helpers shared by the objectives and the trainer; all are no-ops on one process.

Contrastive losses need every process's features as negatives. `gather_with_grad` concatenates them
*with* gradient (`torch.distributed.nn.functional.all_gather`), whose backward sums, onto each process's
own features, the gradients that every process's loss sends them. Each process computes its loss on its
local rows against all gathered columns; with DDP's gradient averaging the parameter gradient then equals
the single-process gradient of the same loss on the concatenated batch.
"""

from __future__ import annotations

import torch
import torch.distributed as torch_dist


def is_distributed() -> bool:
    """True when `torch.distributed` is available and a process group is initialised."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    """This process's rank in the default group; 0 without a process group."""
    return torch_dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the default group; 1 without a process group."""
    return torch_dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and on a single process): the one that logs and writes files."""
    return rank() == 0


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0, keeping the autograd graph.

    Args:
        x: ``[B, ...]``, the same shape on every process.

    Returns:
        ``[world_size * B, ...]``; rows ``rank * B : (rank + 1) * B`` are this process's ``x``. On one
        process, ``x`` itself.

    Raises:
        ValueError: if ``x`` is a 0-d tensor.
    """
    if x.dim() == 0:
        raise ValueError("gather_with_grad needs a tensor with a batch dimension, got a scalar")
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)
