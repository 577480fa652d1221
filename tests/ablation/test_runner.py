import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import infomug.ablation.runner as runner
from infomug.ablation import (
    SweepLayout,
    load_sweep_folder,
    plan_sweep,
    prepare_sweep_folder,
    read_status,
    run_sweep,
    select_runs,
    spec_from_dict,
)
from infomug.ablation.plan import resolve_run_config
from infomug.train import TrainingDiverged, latest_checkpoint
from infomug.train.config import save_config

NOISE = "data.world.irrelevant_caption_fraction"
RUNS = ["mae-s0", "mug_0.1-s0", "mae-s1", "mug_0.1-s1", "mug_0.1-noise1-s0", "mug_0.1-noise1-s1"]


def _measure_json(root: Path, run: str) -> dict:
    return json.loads((SweepLayout(root).measure_dir(run) / "measure.json").read_text())


def _without_seconds(value):
    if isinstance(value, dict):
        return {key: _without_seconds(item) for key, item in value.items() if key != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(item) for item in value]
    return value


def _numbers(root: Path, run: str) -> str:
    """Everything a run's measurement found (as text, so that NaN equals NaN), wall times left out.

    Not the fingerprint: it hashes the safetensors file, whose header's key order varies between saves.
    """
    (model,) = _measure_json(root, run)["models"]
    found = {key: model[key] for key in ("step", "layers", "decoder_bounds")}
    return json.dumps(_without_seconds(found), sort_keys=True)


def _same_weights(root: Path, other: Path, run: str) -> bool:
    weights = [
        load_file(latest_checkpoint(SweepLayout(folder).run_dir(run)) / "model.safetensors")
        for folder in (root, other)
    ]
    return weights[0].keys() == weights[1].keys() and all(
        torch.equal(weights[0][k], weights[1][k]) for k in weights[0]
    )


def _stamps(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): path.stat().st_mtime_ns
        for folder in ("runs", "measure", "status")
        for path in (root / folder).rglob("*")
        if path.is_file()
    }


def _refuse(*args, **kwargs):
    raise AssertionError("nothing should be trained or measured again")


def test_every_run_is_trained_and_measured(tiny_sweep, tiny_spec):
    spec, layout, plan = load_sweep_folder(tiny_sweep)
    assert spec == tiny_spec() and plan == plan_sweep(spec)
    assert yaml.safe_load(layout.spec.read_text()) == spec.to_dict()
    assert [run.name for run in plan.runs] == RUNS
    for name in RUNS:
        status = read_status(layout, name)
        assert status["state"] == "measured" and status["steps"] == 4 and status["error"] is None, name
        assert status["train_seconds"] > 0 and status["measure_seconds"] > 0
        assert latest_checkpoint(layout.run_dir(name)).name == "step_00000004"
        (model,) = _measure_json(tiny_sweep, name)["models"]
        assert model["step"] == 4 and Path(model["source"]).parent.parent == layout.run_dir(name)
        assert model["objective"] == plan.run(name).objective
        assert [layer["layer"] for layer in model["layers"]] == ["block_1"]
    assert read_status(layout, "no-such-run") == {}
    settings = _measure_json(tiny_sweep, "mae-s0")["settings"]
    assert settings["images"] == 200 and settings["caption_steps"] == 10 and settings["uncertainty"] is False


def test_noise_runs_train_on_noisy_captions_and_are_measured_on_the_base_ones(tiny_sweep):
    layout = SweepLayout(tiny_sweep)
    trained = yaml.safe_load((layout.run_dir("mug_0.1-noise1-s0") / "config.yaml").read_text())
    assert trained["data"]["world"]["irrelevant_caption_fraction"] == 1.0
    data = {name: _measure_json(tiny_sweep, name)["data"] for name in RUNS}
    assert data["mug_0.1-noise1-s0"]["config"]["world"]["irrelevant_caption_fraction"] == 0.0
    assert all(value == data["mae-s0"] for value in data.values())  # every checkpoint, the same eval data
    assert _numbers(tiny_sweep, "mug_0.1-noise1-s0") != _numbers(tiny_sweep, "mug_0.1-s0")


def test_a_second_call_trains_and_measures_nothing_then_writes_the_report(
    tiny_sweep, tiny_spec, monkeypatch, stub_report
):
    before = _stamps(tiny_sweep)
    monkeypatch.setattr(runner, "train", _refuse)
    monkeypatch.setattr("infomug.measure.api.measure", _refuse)
    assert run_sweep(tiny_spec(), tiny_sweep, progress=False, report=False) is None
    assert stub_report == []
    assert run_sweep(tiny_spec(), tiny_sweep, progress=False) == tiny_sweep / "ablation.md"
    assert stub_report == [tiny_sweep]
    assert _stamps(tiny_sweep) == before


def test_an_interrupted_sweep_resumes_to_the_same_numbers(
    tmp_path, tiny_sweep, tiny_spec, monkeypatch, stub_report
):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    root = tmp_path / "sweep"
    with monkeypatch.context() as patch:
        patch.setattr("infomug.measure.api.measure", killed)  # killed between training and measuring
        with pytest.raises(KeyboardInterrupt):
            run_sweep(tiny_spec(), root, only=["mug_0.1-s0"], progress=False)
    layout = SweepLayout(root)
    assert read_status(layout, "mug_0.1-s0")["state"] == "trained"
    assert not (layout.measure_dir("mug_0.1-s0") / "measure.json").exists()
    assert not layout.run_dir("mae-s0").exists()
    monkeypatch.setattr(runner, "train", _refuse)
    assert run_sweep(tiny_spec(), root, only=["mug_0.1-s0"], progress=False) is None
    assert stub_report == []  # five runs of the plan are not measured yet
    status = read_status(layout, "mug_0.1-s0")
    assert status["state"] == "measured" and status["train_seconds"] > 0 and status["measure_seconds"] > 0
    assert _same_weights(root, tiny_sweep, "mug_0.1-s0")  # CPU training is bit for bit deterministic
    assert _numbers(root, "mug_0.1-s0") == _numbers(tiny_sweep, "mug_0.1-s0")


def test_measured_without_its_status_is_not_measured_again(
    tmp_path, tiny_sweep, tiny_spec, monkeypatch, stub_report
):
    # Killed after measure.json was written, before the status was: the report must not wait forever.
    root = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, root)
    layout = SweepLayout(root)
    status = read_status(layout, "mae-s1")
    layout.status_file("mae-s1").write_text(json.dumps({**status, "state": "trained"}))
    monkeypatch.setattr(runner, "train", _refuse)
    monkeypatch.setattr("infomug.measure.api.measure", _refuse)
    assert run_sweep(tiny_spec(), root, progress=False) == root / "ablation.md"
    assert read_status(layout, "mae-s1") == status and stub_report == [root]


def test_a_diverging_run_is_recorded_and_the_sweep_goes_on(
    tmp_path, tiny_sweep, tiny_spec, monkeypatch, stub_report
):
    root = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, root)
    layout = SweepLayout(root)
    for name in ("mae-s1", "mug_0.1-noise1-s1"):  # neither trained yet; mae-s1 comes first
        shutil.rmtree(layout.run_dir(name))
        shutil.rmtree(layout.measure_dir(name))
        layout.status_file(name).unlink()
    trained = []
    real_train = runner.train

    def diverging(config, run_dir, **options):
        trained.append(Path(run_dir).name)
        if Path(run_dir).name == "mae-s1":
            raise TrainingDiverged(2, "loss_pixel", float("nan"), None)
        return real_train(config, run_dir, **options)

    monkeypatch.setattr(runner, "train", diverging)
    assert run_sweep(tiny_spec(), root, progress=False) == root / "ablation.md"
    assert trained == ["mae-s1", "mug_0.1-noise1-s1"] and stub_report == [root]
    status = read_status(layout, "mae-s1")
    assert status["state"] == "diverged" and "diverged at step 2: loss_pixel is nan" in status["error"]
    assert not (layout.measure_dir("mae-s1") / "measure.json").exists()
    assert read_status(layout, "mug_0.1-noise1-s1")["state"] == "measured"
    assert _same_weights(root, tiny_sweep, "mug_0.1-noise1-s1")
    assert _numbers(root, "mug_0.1-noise1-s1") == _numbers(tiny_sweep, "mug_0.1-noise1-s1")
    # A rerun does not train the diverged run again (it would diverge again); the report is rewritten.
    monkeypatch.setattr(runner, "train", _refuse)
    assert run_sweep(tiny_spec(), root, progress=False) == root / "ablation.md"
    assert stub_report == [root, root]


def test_another_spec_on_the_same_folder_is_refused(tiny_sweep, tiny_spec):
    before = SweepLayout(tiny_sweep).spec.read_text()
    changed = tiny_spec().with_changes(["train.steps=3"], images=150)
    with pytest.raises(
        ValueError, match=r"other settings \(differing: overrides, measure.budget_set.images\)"
    ):
        run_sweep(changed, tiny_sweep, progress=False)
    with pytest.raises(ValueError, match=r"differing: seeds\)"):
        prepare_sweep_folder(tiny_spec(seeds=[0]), tiny_sweep)
    assert SweepLayout(tiny_sweep).spec.read_text() == before


def test_a_folder_without_a_sweep_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a sweep folder"):
        load_sweep_folder(tmp_path)


def test_select_runs_matches_globs_and_shards_partition_the_runs(tiny_spec):
    plan = plan_sweep(tiny_spec())
    names = lambda runs: [run.name for run in runs]  # noqa: E731
    assert names(select_runs(plan)) == RUNS
    assert names(select_runs(plan, ["mug*"])) == [name for name in RUNS if name.startswith("mug")]
    assert names(select_runs(plan, ["*-s1", "mae-*"])) == [
        "mae-s0",
        "mae-s1",
        "mug_0.1-s1",
        "mug_0.1-noise1-s1",
    ]
    for only in ((), ["mug*"]):
        wanted = names(select_runs(plan, only))
        for count in (1, 2, 3, 4, 7):
            shards = [names(select_runs(plan, only, (index, count))) for index in range(count)]
            assert sorted(sum(shards, [])) == sorted(wanted), (only, count)
            assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert names(select_runs(plan, ["mug*"], (1, 2))) == ["mug_0.1-s1", "mug_0.1-noise1-s1"]
    with pytest.raises(ValueError, match=r"\['clip\*'\] matches no run"):
        select_runs(plan, ["clip*"])
    for shard in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="shard must be i/n with 0 <= i < n"):
            select_runs(plan, shard=shard)


def test_a_measured_run_whose_checkpoints_were_deleted_is_not_trained_again(
    tmp_path, tiny_sweep, tiny_spec, monkeypatch, stub_report
):
    # Checkpoints are the bulk of a sweep folder; once a run is measured at its last step they may go.
    root = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, root)
    for name in ("mae-s0", "mug_0.1-noise1-s1"):
        shutil.rmtree(SweepLayout(root).run_dir(name) / "checkpoints")
    monkeypatch.setattr(runner, "train", _refuse)
    monkeypatch.setattr("infomug.measure.api.measure", _refuse)
    assert run_sweep(tiny_spec(), root, progress=False) == root / "ablation.md"
    assert stub_report == [root]


def test_a_measured_run_without_its_measure_json_is_measured_again(
    tmp_path, tiny_sweep, tiny_spec, monkeypatch, stub_report
):
    root = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, root)
    layout = SweepLayout(root)
    (layout.measure_dir("mae-s1") / "measure.json").unlink()
    measured = []
    monkeypatch.setattr(runner, "train", _refuse)
    monkeypatch.setattr(
        "infomug.measure.api.measure", lambda run_dir, *a, out, **k: measured.append(Path(out).name)
    )
    run_sweep(tiny_spec(), root, progress=False, report=False)
    assert measured == ["mae-s1"]


def test_two_writers_of_one_status_file_never_rename_each_others_half_file(tmp_path, monkeypatch):
    # Every shard rewrites plan.json when it starts; each write goes aside to a file of its own.
    path = tmp_path / "plan.json"
    real_replace = os.replace
    interleaved = []

    def replace(source, target):
        if not interleaved:
            interleaved.append(target)
            runner._write_json(path, {"writer": "other"})  # another process, between write and rename
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    runner._write_json(path, {"writer": "this"})
    assert interleaved and json.loads(path.read_text()) == {"writer": "this"}
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_resuming_after_the_base_run_config_was_edited_is_refused(tmp_path, tiny_values):
    base = tmp_path / "base.yaml"
    base.write_text("optim:\n  lr: 0.001\n")
    values = tiny_values(base=str(base), caption_noise=None)
    root = tmp_path / "sweep"
    spec = spec_from_dict(values)
    layout, plan = prepare_sweep_folder(spec, root)
    # mae-s0 started (trained with --device cpu), the others not yet.
    run = plan.run("mae-s0")
    save_config(
        resolve_run_config(spec, (*run.overrides, "train.device=cpu")),
        layout.run_dir(run.name) / "config.yaml",
    )
    prepare_sweep_folder(spec_from_dict(values), root)  # the same base: resumed
    base.write_text("optim:\n  lr: 0.002\n")
    with pytest.raises(ValueError, match=r"run mae-s0 .* \(differing: optim.lr\): was .*base.yaml edited"):
        prepare_sweep_folder(spec_from_dict(values), root)


def test_noise_runs_are_measured_on_the_base_fraction_the_shared_overrides_set(tiny_spec):
    noise = {"setting": "world.irrelevant_caption_fraction", "fractions": [0.0, 1.0], "variants": ["mug_0.1"]}
    spec = tiny_spec(overrides=[*tiny_spec().overrides, f"{NOISE}=0.25"], caption_noise=noise)
    plan = plan_sweep(spec)
    main = resolve_run_config(spec, plan.run("mug_0.1-s0").overrides)
    assert main.data.world.irrelevant_caption_fraction == 0.25
    for name in ("mug_0.1-noise0-s0", "mug_0.1-noise1-s1"):
        assert runner._measure_data_overrides(spec, plan.run(name)) == [
            "world.irrelevant_caption_fraction=0.25"
        ]
    assert runner._measure_data_overrides(spec, plan.run("mug_0.1-s0")) == []


def test_unreadable_sweep_files_are_named(tmp_path, tiny_sweep):
    root = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, root, ignore=shutil.ignore_patterns("runs", "measure"))
    layout = SweepLayout(root)
    layout.status_file("mae-s0").write_text('{"state": "meas')
    with pytest.raises(ValueError, match=r"status/mae-s0.json is not valid JSON .*delete it"):
        read_status(layout, "mae-s0")
    layout.spec.write_text("variants: [a\n")
    with pytest.raises(ValueError, match=r"sweep.yaml: "):
        load_sweep_folder(root)
    layout.spec.write_text("- a\n")
    with pytest.raises(ValueError, match=r"sweep.yaml: the top level must be a mapping"):
        load_sweep_folder(root)
