"""Seeds and global generator states: stable derived seeds, and states that survive a checkpoint file."""

import io
import random

import numpy as np
import pytest
import torch

from infomug.train.rng import capture_rng_state, derive_seed, restore_rng_state, seed_everything


def _draws() -> tuple:
    """One draw from each global generator, the Box-Muller caches included (gauss / standard_normal)."""
    return (
        random.random(),
        random.gauss(0.0, 1.0),
        np.random.rand(3).tolist(),  # noqa: NPY002 (the global state is what is under test)
        np.random.standard_normal(),  # noqa: NPY002
        torch.rand(4).tolist(),
        torch.randn(3).tolist(),
    )


def test_capture_restore_round_trips_through_a_weights_only_file():
    seed_everything(123)
    _draws()
    # Leave half-used Gaussian pairs in both Python's and NumPy's caches: they are part of the state.
    random.gauss(0.0, 1.0)
    np.random.standard_normal()  # noqa: NPY002
    buffer = io.BytesIO()
    torch.save(capture_rng_state(), buffer)
    expected = _draws()

    seed_everything(999)  # move every generator somewhere else
    assert _draws() != expected
    buffer.seek(0)
    restore_rng_state(torch.load(buffer, weights_only=True))
    assert _draws() == expected


def test_restore_needs_every_generator():
    state = capture_rng_state()
    del state["numpy"]
    with pytest.raises(KeyError, match="numpy"):
        restore_rng_state(state)


def test_seed_everything_repeats_every_generator():
    seed_everything(7)
    first = _draws()
    seed_everything(7)
    assert _draws() == first
    seed_everything(8)
    assert _draws() != first


def test_derive_seed_is_a_stable_63_bit_function_of_its_parts():
    # Pinned values: a change here silently changes every run's data order, masks and augmentations. They
    # also show the seed ignores the per-process hash randomisation that `hash()` would pick up.
    assert derive_seed(0, "mask", 3, 1) == 8034410225109909114
    assert derive_seed(0) == 2631537505891389924
    seeds = {
        derive_seed(*parts)
        for parts in [(0, "mask", 3, 1), (0, "mask", 1, 3), (1, "mask", 3, 1), (0, "eval-mask", 3, 1)]
    }
    assert len(seeds) == 4, "order and every part matter"
    assert derive_seed("a", 1) != derive_seed("a", "1"), "an int and its string are different parts"
    assert all(isinstance(seed, int) and 0 <= seed < 2**63 for seed in seeds)
