from pathlib import Path

import pytest
import yaml

from infomug.ablation import CaptionNoise, SweepSpec, load_spec, plan_sweep, spec_from_dict
from infomug.ablation.plan import resolve_run_config

REPO = Path(__file__).resolve().parents[2]
CPU_SWEEP = REPO / "experiments" / "configs" / "ablation_cpu.yaml"


def test_the_cpu_sweep_file_plans_runs_of_the_size_it_states():
    spec = load_spec(CPU_SWEEP)
    assert spec.name == "ablation_cpu"
    assert spec.base == (REPO / "experiments" / "configs" / "mug_cpu.yaml").resolve()
    assert list(spec.variants) == ["mae", "mug_0.05", "mug_0.1", "mug_0.3", "mug_1.0", "clip", "simclr"]
    assert spec.seeds == (0, 1, 2)
    assert spec.caption_noise == CaptionNoise(
        "world.irrelevant_caption_fraction", (0.0, 0.5, 1.0), ("mae", "mug_0.1")
    )
    assert dict(spec.measure.budget_set) == {"images": 4000, "caption_steps": 300, "decoder_samples": 1000}
    plan = plan_sweep(spec)
    # 7 variants x 3 seeds, then MUG 0.1 at 50% and 100% irrelevant captions (MAE and fraction 0 reuse).
    assert len(plan.runs) == 7 * 3 + 2 * 3
    objectives = {"mae": "mae", "clip": "clip", "simclr": "simclr"}
    weights = {"mae": 0.0, "mug_0.05": 0.05, "mug_0.1": 0.1, "mug_0.3": 0.3, "mug_1.0": 1.0}
    for run in plan.runs:
        config = resolve_run_config(spec, run.overrides)
        assert (config.model.embed_dim, config.model.depth, config.model.num_heads) == (128, 4, 4), run.name
        assert (config.model.img_size, config.model.patch_size, config.data.world.image_size) == (32, 4, 32)
        assert (config.train.steps, config.train.batch_size, config.optim.warmup_steps) == (500, 64, 50)
        assert config.train.seed == run.seed
        assert config.data.source == "world" and config.data.world.seed == 0  # the same data for every run
        assert config.model.objective == run.objective == objectives.get(run.variant, "mug")
        assert run.caption_loss_weight == weights.get(run.variant)
        if run.objective == "mug":
            assert config.model.caption_loss_weight == run.caption_loss_weight
        assert config.data.world.irrelevant_caption_fraction == (run.caption_noise or 0.0)


def _write(tmp_path: Path, values: dict) -> Path:
    (tmp_path / "base.yaml").write_text("train:\n  steps: 10\noptim:\n  warmup_steps: 1\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", **values}))
    return path


def test_base_is_relative_to_the_file_and_the_name_defaults_to_its_stem(tmp_path):
    spec = load_spec(_write(tmp_path, {"variants": {"a": []}}))
    assert spec.base == (tmp_path / "base.yaml").resolve() and spec.name == "sweep"
    assert spec.seeds == (0,) and spec.variants == {"a": ()} and spec.caption_noise is None
    assert resolve_run_config(spec, ()).train.steps == 10


@pytest.mark.parametrize(
    "values, message",
    [
        ({"variants": {"a": []}, "seed": [0]}, "unknown sweep settings ['seed']"),
        ({"variants": {"a": []}, "seeds": [0, 1, 0]}, "seeds repeat"),
        ({"variants": {"a": []}, "seeds": [0, "1"]}, "seeds must be a list of integers"),
        ({"variants": {"a": []}, "seeds": [0.5]}, "seeds must be a list of integers"),
        ({"variants": {"a": []}, "seeds": [True]}, "seeds must be a list of integers"),
        ({"variants": {"a": []}, "seeds": 3}, "seeds must be a list of integers"),
        ({"variants": {"a": []}, "seeds": []}, "at least one seed"),
        ({"variants": {}}, "at least one variant"),
        ({"variants": {"mug 0.1": []}}, "variant name 'mug 0.1'"),
        ({"variants": {"a/b": []}}, "variant name 'a/b'"),
        ({"variants": {"a": "train.steps=3"}}, "variants.a must be a list"),
        ({"variants": {"a": ["train.steps"]}}, "must look like key.path=value"),
        ({"variants": {"a": []}, "overrides": ["=3"]}, "empty key"),
        (
            {"variants": {"a": []}, "caption_noise": {"variants": ["b"]}},
            "caption_noise.variants ['b'] are not",
        ),
        (
            {"variants": {"a": []}, "caption_noise": {"variants": "a"}},
            "caption_noise.variants must be a list",
        ),
        ({"variants": {"a": []}, "caption_noise": {"variants": ["a"], "fractions": [0, 1.5]}}, "in [0, 1]"),
        ({"variants": {"a": []}, "caption_noise": {"variants": ["a"], "fractions": [-0.1]}}, "in [0, 1]"),
        ({"variants": {"a": []}, "caption_noise": {"variants": ["a"], "fractions": []}}, "in [0, 1]"),
        (
            {"variants": {"a": []}, "caption_noise": {"variants": ["a"], "fractions": [0.5, 0.5]}},
            "fractions repeat",
        ),
        (
            {"variants": {"a": []}, "caption_noise": {"variants": ["a"], "fractions": ["x"]}},
            "list of numbers",
        ),
        (
            {"variants": {"a": []}, "caption_noise": {"variants": ["a"], "fraction": [0.5]}},
            "unknown caption_noise",
        ),
        ({"variants": {"a": []}, "measure": {"budget": "fast"}}, "budget must be one of"),
        ({"variants": {"a": []}, "measure": {"budget_set": {"imagse": 100}}}, "unknown budget settings"),
        ({"variants": {"a": []}, "measure": {"budget_set": {"images": 0}}}, "images must be a positive"),
        ({"variants": {"a": []}, "measure": {"pool": "max"}}, "measure.pool must be one of"),
        ({"variants": {"a": []}, "measure": {"layer": "last"}}, "unknown measure settings ['layer']"),
        ({"variants": {"a": []}, "measure": {"data_overrides": ["eval_path"]}}, "key.path=value"),
    ],
)
def test_bad_sweep_files_name_the_problem(tmp_path, values, message):
    path = _write(tmp_path, values)
    with pytest.raises(ValueError, match="sweep.yaml") as error:
        load_spec(path)
    assert message in str(error.value)


def test_a_run_config_given_as_a_sweep_file_is_recognised(tmp_path):
    path = tmp_path / "mug_cpu.yaml"
    path.write_text("model:\n  depth: 2\ntrain:\n  steps: 10\n")
    with pytest.raises(ValueError, match=r"settings \['model', 'train'\].*a run config\? name it as `base:`"):
        load_spec(path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="base run config not found: .*nowhere.yaml"):
        spec_from_dict({"base": "nowhere.yaml", "variants": {"a": []}}, root=tmp_path)
    with pytest.raises(FileNotFoundError, match="sweep file not found"):
        load_spec(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("variants: [a\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ValueError, match="top level must be a mapping"):
        load_spec(tmp_path / "list.yaml")


def test_to_dict_round_trips_through_yaml(tiny_spec):
    spec = tiny_spec().with_changes(["train.steps=3"], [2, 5], channel_sigmas=(0.5, 1.0), plane_sigma=1.0)
    assert spec.measure.budget_set["channel_sigmas"] == (0.5, 1.0)
    values = yaml.safe_load(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    assert values["measure"]["budget_set"]["channel_sigmas"] == [0.5, 1.0]
    again = spec_from_dict(values)
    assert again == spec and again.to_dict() == spec.to_dict()
    with_base = spec_from_dict({**values, "base": str(CPU_SWEEP.parent / "mug_cpu.yaml")})
    assert spec_from_dict(with_base.to_dict()) == with_base


def test_with_changes_appends_overrides_replaces_seeds_and_merges_the_budget(tiny_spec):
    spec = tiny_spec()
    changed = spec.with_changes(["train.steps=3", "optim.lr=1e-4"], [7], images=300)
    assert changed.overrides == (*spec.overrides, "train.steps=3", "optim.lr=1e-4")
    assert changed.seeds == (7,)
    assert changed.measure.budget_set == {**spec.measure.budget_set, "images": 300}
    assert (changed.variants, changed.caption_noise, changed.base) == (
        spec.variants,
        spec.caption_noise,
        spec.base,
    )
    assert spec.with_changes() == spec
    assert spec.with_changes(seeds=None).seeds == spec.seeds
    with pytest.raises(ValueError, match="seeds repeat"):
        spec.with_changes(seeds=[1, 1])
    with pytest.raises(ValueError, match="unknown budget settings"):
        spec.with_changes(imagse=3)
    with pytest.raises(ValueError, match="key.path=value"):
        spec.with_changes(["train.steps"])


def test_a_spec_built_in_code_checks_itself():
    with pytest.raises(ValueError, match="seeds must be integers"):
        SweepSpec(name="s", base=None, overrides=(), seeds=("0",), variants={"a": ()})
    spec = SweepSpec(name="s", base=None, overrides=["train.steps=3"], seeds=[0], variants={"a": ["x.y=1"]})
    assert spec.overrides == ("train.steps=3",) and spec.seeds == (0,) and spec.variants == {"a": ("x.y=1",)}


def test_the_gpu_sweep_file_is_the_same_ablation_at_vit_b_scale():
    cpu = load_spec(CPU_SWEEP)
    spec = load_spec(REPO / "experiments" / "configs" / "ablation_gpu.yaml")
    assert list(spec.variants) == list(cpu.variants) and spec.seeds == cpu.seeds
    assert spec.caption_noise is None  # web pairs have no irrelevant-caption knob
    assert spec.measure.data == "imagefolder" and spec.measure.layers == "last"
    plan = plan_sweep(spec)
    assert len(plan.runs) == 21
    for run in plan.runs:
        config = resolve_run_config(spec, run.overrides)
        assert (config.model.img_size, config.model.patch_size, config.model.embed_dim) == (224, 16, 768)
        assert config.model.objective == run.objective == run.variant.split("_")[0]
        assert config.data.source == "webdataset" and config.train.precision == "bf16"
        assert config.train.steps == 100000 and config.train.batch_size == 4096
        if run.objective == "mug":
            assert config.model.caption_loss_weight == float(run.variant.split("_")[1])


def test_the_sweep_can_also_fine_tune_every_checkpoint(tmp_path, monkeypatch):
    spec = load_spec(_write(tmp_path, {"variants": {"a": []}, "measure": {"finetune": ["full.steps=5"]}}))
    assert spec.measure.finetune == ("full.steps=5",)
    assert spec_from_dict(spec.to_dict(), tmp_path).measure == spec.measure
    assert load_spec(_write(tmp_path, {"variants": {"a": []}})).measure.finetune is None
    with pytest.raises(ValueError, match="measure.finetune"):
        load_spec(_write(tmp_path, {"variants": {"a": []}, "measure": {"finetune": ["full.nonsense=1"]}}))

    import infomug.finetune
    from infomug.ablation import runner

    calls = []
    monkeypatch.setattr(
        infomug.finetune, "finetune", lambda models, settings, **kw: calls.append((models, settings, kw))
    )
    runner._finetune_run(spec, tmp_path / "run", tmp_path / "measure", None, False)
    ((models, settings, kw),) = calls
    assert (
        models == [tmp_path / "run"]
        and settings.full.steps == 5
        and kw["out"] == tmp_path / "measure" / "finetune"
    )


def test_a_sweep_file_naming_a_key_twice_is_refused(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: twice\nseeds: [0]\nseeds: [1]\n")
    with pytest.raises(ValueError, match=r"sweep.yaml: not valid YAML .*duplicate key 'seeds'"):
        load_spec(path)
