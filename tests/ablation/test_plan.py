import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from infomug.ablation import Cell, SweepPlan, plan_sweep
from infomug.ablation.plan import resolve_run_config
from infomug.data import build_dataset
from infomug.data.world import ShapesWorld, WorldConfig
from infomug.train import latest_checkpoint, train
from infomug.train.loader import TrainBatches

NOISE = "data.world.irrelevant_caption_fraction"
VARIANTS = {
    "mae": ["model.preset=mae_vit_tiny_patch4_32"],
    "mug_0.1": ["model.caption_loss_weight=0.1"],
    "clip": ["model.preset=clip_vit_tiny_patch4_32"],
    "simclr": ["model.preset=simclr_vit_tiny_patch4_32"],
}


def test_runs_are_named_seed_major_and_cells_point_at_the_run_that_serves_them(tiny_spec):
    noise = {
        "setting": "world.irrelevant_caption_fraction",
        "fractions": [0.0, 0.5, 1.0],
        "variants": list(VARIANTS),
    }
    spec = tiny_spec(variants=VARIANTS, caption_noise=noise)
    plan = plan_sweep(spec)
    main = [f"{variant}-s{seed}" for seed in (0, 1) for variant in VARIANTS]
    # Only MUG reads captions, and CLIP: the caption-free objectives' noise cells reuse their main runs.
    noisy = [
        f"{variant}-noise{fraction}-s{seed}"
        for seed in (0, 1)
        for variant in ("mug_0.1", "clip")
        for fraction in ("0.5", "1")
    ]
    assert [run.name for run in plan.runs] == main + noisy
    assert [(run.variant, run.seed) for run in plan.runs[:4]] == [(variant, 0) for variant in VARIANTS]
    assert [run.objective for run in plan.runs[:4]] == ["mae", "mug", "clip", "simclr"]
    assert [run.caption_loss_weight for run in plan.runs[:4]] == [0.0, 0.1, None, None]
    assert all(run.caption_noise is None for run in plan.runs[:8])
    assert [run.caption_noise for run in plan.runs[8:12]] == [0.5, 1.0, 0.5, 1.0]
    cells = {(cell.variant, cell.caption_noise, cell.seed): cell.run for cell in plan.cells}
    assert len(cells) == len(plan.cells) == 8 + 2 * 4 * 3
    for seed in (0, 1):
        for variant in VARIANTS:
            assert cells[variant, None, seed] == f"{variant}-s{seed}"
            assert cells[variant, 0.0, seed] == f"{variant}-s{seed}"  # fraction 0 is the base data
        for variant in ("mae", "simclr"):
            assert cells[variant, 0.5, seed] == cells[variant, 1.0, seed] == f"{variant}-s{seed}"
        for variant in ("mug_0.1", "clip"):
            assert cells[variant, 1.0, seed] == f"{variant}-noise1-s{seed}"
    assert plan.cells[:8] == tuple(
        Cell(variant=v, caption_noise=None, seed=s, run=f"{v}-s{s}") for s in (0, 1) for v in VARIANTS
    )


def test_a_noise_run_is_its_main_run_with_the_fraction_set(tiny_spec):
    spec = tiny_spec()
    plan = plan_sweep(spec)
    main, noisy = plan.run("mug_0.1-s1"), plan.run("mug_0.1-noise1-s1")
    assert noisy.overrides == (*main.overrides, f"{NOISE}=1.0")
    assert (noisy.variant, noisy.seed, noisy.objective, noisy.caption_loss_weight) == (
        "mug_0.1",
        1,
        "mug",
        0.1,
    )
    assert main.overrides == (*spec.overrides, "model.caption_loss_weight=0.1", "train.seed=1")
    config, base = resolve_run_config(spec, noisy.overrides), resolve_run_config(spec, main.overrides)
    assert (
        config.data.world.irrelevant_caption_fraction == 1.0
        and base.data.world.irrelevant_caption_fraction == 0.0
    )
    assert config.train.seed == base.train.seed == 1
    with pytest.raises(KeyError, match="no run named 'mug_0.1-noise0-s1'"):
        plan.run("mug_0.1-noise0-s1")


def test_the_fraction_the_base_data_has_reuses_the_main_run(tiny_spec):
    noise = {
        "setting": "world.irrelevant_caption_fraction",
        "fractions": [0.0, 0.25, 1.0],
        "variants": ["mug_0.1"],
    }
    spec = tiny_spec(overrides=[*tiny_spec().overrides, f"{NOISE}=0.25"], seeds=[3], caption_noise=noise)
    plan = plan_sweep(spec)
    assert [run.name for run in plan.runs] == [
        "mae-s3",
        "mug_0.1-s3",
        "mug_0.1-noise0-s3",
        "mug_0.1-noise1-s3",
    ]
    cells = {cell.caption_noise: cell.run for cell in plan.cells if cell.variant == "mug_0.1"}
    assert cells == {
        None: "mug_0.1-s3",
        0.0: "mug_0.1-noise0-s3",
        0.25: "mug_0.1-s3",
        1.0: "mug_0.1-noise1-s3",
    }
    assert (
        resolve_run_config(
            spec, plan.run("mug_0.1-noise0-s3").overrides
        ).data.world.irrelevant_caption_fraction
        == 0
    )


def test_plan_round_trips_through_json(tiny_spec):
    plan = plan_sweep(tiny_spec())
    again = SweepPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan


def test_bad_runs_and_settings_are_named(tiny_spec):
    with pytest.raises(ValueError, match="data.world.no_such is not a data setting"):
        plan_sweep(tiny_spec(caption_noise={"setting": "world.no_such", "variants": ["mug_0.1"]}))
    with pytest.raises(ValueError, match="sweep 'tiny': .*model.no_such"):
        plan_sweep(tiny_spec(variants={"bad": ["model.no_such=1"]}, caption_noise=None))


def test_world_images_do_not_depend_on_the_irrelevant_caption_fraction():
    # The reason caption-free objectives' noise cells reuse their main runs: the same seed, split and
    # index give the same image whatever the captions say.
    for split in ("train", "eval"):
        clean = ShapesWorld(WorldConfig(seed=3, size=64, eval_size=64, image_size=16), split=split)
        noisy = ShapesWorld(
            WorldConfig(seed=3, size=64, eval_size=64, image_size=16, irrelevant_caption_fraction=1.0),
            split=split,
        )
        index = np.arange(64)
        assert torch.equal(clean.images(index), noisy.images(index))
        clean_captions, clean_labels = clean.captions_and_labels(index)
        noisy_captions, noisy_labels = noisy.captions_and_labels(index)
        assert sum(a != b for a, b in zip(clean_captions, noisy_captions, strict=True)) > 32
        assert noisy_labels["caption_is_irrelevant"].all() and not clean_labels["caption_is_irrelevant"].any()
        assert np.array_equal(clean_labels["shape"], noisy_labels["shape"])


def _images_and_captions(samples: list) -> dict:
    return {"image": torch.stack([s["image"] for s in samples]), "caption": [s["caption"] for s in samples]}


@pytest.mark.parametrize("variant, augmentation", [("mae", "pretrain"), ("simclr", "two_view")])
def test_training_batches_of_caption_free_objectives_do_not_depend_on_caption_noise(
    tiny_spec, variant, augmentation
):
    spec = tiny_spec(variants=VARIANTS)
    run = plan_sweep(spec).run(f"{variant}-s1")
    batches = {}
    for fraction in (0.0, 1.0):
        config = resolve_run_config(spec, (*run.overrides, f"{NOISE}={fraction}"))
        dataset = build_dataset(config.data, "train", augmentation)
        stream = TrainBatches(dataset, _images_and_captions, config.train.batch_size, config.train.seed)
        batches[fraction] = [next(stream) for _ in range(5)]  # 4 batches an epoch: into the second
    for clean, noisy in zip(batches[0.0], batches[1.0], strict=True):
        assert torch.equal(clean["image"], noisy["image"])
        assert clean["caption"] != noisy["caption"]


@pytest.mark.parametrize("variant, same", [("mae", True), ("simclr", True), ("mug_0.1", False)])
def test_caption_free_objectives_train_to_the_same_weights_whatever_the_captions(
    tmp_path, tiny_spec, variant, same
):
    spec = tiny_spec(
        variants=VARIANTS, overrides=[*tiny_spec().overrides, "train.steps=2", "train.checkpoint_every=0"]
    )
    run = plan_sweep(spec).run(f"{variant}-s0")
    weights = []
    for fraction in (0.0, 1.0):
        run_dir = tmp_path / f"noise{fraction}"
        train(resolve_run_config(spec, (*run.overrides, f"{NOISE}={fraction}")), run_dir, progress=False)
        weights.append(load_file(latest_checkpoint(run_dir) / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    # MUG, which reads the captions, is the control: its weights must move with them.
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0]) == same


@pytest.mark.parametrize(
    "changes, repeated",
    [
        # "mug-noise1" seed 0 and "mug" at caption noise 1 seed 0 are both "mug-noise1-s0".
        (
            {
                "variants": {"mug": ["model.caption_loss_weight=0.1"], "mug-noise1": []},
                "caption_noise": {"fractions": [1.0], "variants": ["mug"]},
            },
            "mug-noise1-s0",
        ),
        # Fractions that print alike to 6 digits.
        (
            {"caption_noise": {"fractions": [0.1, 0.1000000001], "variants": ["mug_0.1"]}},
            "mug_0.1-noise0.1-s0",
        ),
    ],
)
def test_runs_that_would_share_a_folder_are_refused(tiny_spec, changes, repeated):
    with pytest.raises(ValueError, match=rf"runs \[.*'{re.escape(repeated)}'.*\] would share a folder"):
        plan_sweep(tiny_spec(**changes))


def test_a_caption_noise_setting_that_is_not_a_fraction_is_named(tiny_spec):
    with pytest.raises(ValueError, match=r"data.source is 'world', not a fraction"):
        plan_sweep(tiny_spec(caption_noise={"setting": "source", "variants": ["mug_0.1"]}))
