import io
import json
import tarfile

import pytest
import torch
from PIL import Image

from infomug.cli import main
from infomug.data import DataConfig, build_dataset
from infomug.data.survey import save_sample_grid, survey_dataset


def test_world_survey_reports_exact_factor_entropies_and_caption_information():
    world = build_dataset(DataConfig(world={"irrelevant_caption_fraction": 0.3}), augmentation="eval")
    survey = survey_dataset(world, "world", limit=50)
    assert survey.samples == 50
    assert survey.image_shape == (3, 32, 32)
    assert survey.factor_entropies["shape"] == pytest.approx(torch.log(torch.tensor(8.0)).item())
    assert survey.caption_information["background"] == 0.0
    assert 0 < survey.caption_information["shape"] < survey.factor_entropies["shape"]
    assert survey.bad_samples is None
    text = str(survey)
    assert "I(caption; factor)" in text and "background" in text
    assert json.loads(json.dumps(survey.to_dict()))["samples"] == 50


def test_survey_of_user_data_counts_bad_samples(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (12, 12), (200, 10, 10)).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"not an image at all")
    (tmp_path / "pairs.tsv").write_text(
        "filepath\ttitle\nimages/good.png\ta red square\nimages/broken.png\ta broken file\n"
        "images/good.png\t   \n"
    )
    dataset = build_dataset(DataConfig(source="csv", path=str(tmp_path / "pairs.tsv"), image_size=16))
    survey = survey_dataset(dataset, "pairs")
    # 1 of the 3 rows is usable; the row without a caption is left out when the file is read, the broken
    # image skipped when loaded, and both are counted, by reason.
    assert survey.samples == 1
    assert "1 good samples" in str(survey)
    assert survey.bad_samples.counts["unreadable_image"] == 1
    assert survey.bad_samples.counts["empty_caption"] == 1
    assert "2 bad samples" in str(survey)


def test_survey_and_grid_reject_empty_input(tmp_path):
    with pytest.raises(ValueError, match="limit must be positive"):
        survey_dataset(build_dataset(DataConfig()), "world", limit=0)
    with pytest.raises(ValueError, match="no samples"):
        save_sample_grid([], tmp_path / "grid.png", (0.5,) * 3, (0.5,) * 3)


def test_grid_is_written(tmp_path):
    world = build_dataset(DataConfig(), augmentation="two_view")
    path = tmp_path / "out" / "grid.png"
    save_sample_grid([world[i] for i in range(5)], path, world.mean, world.std, columns=3)
    with Image.open(path) as image:
        assert image.width > image.height  # 3 columns, 2 rows


def test_data_command_prints_the_survey_and_writes_json_and_grid(tmp_path, capsys):
    code = main(
        [
            "data",
            "world",
            "--limit",
            "20",
            "--set",
            "world.partial_caption_fraction=0.5",
            "--grid",
            str(tmp_path / "grid.png"),
            "--json",
            str(tmp_path / "survey.json"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "20 good samples" in out and "H(factor)" in out
    assert (tmp_path / "grid.png").is_file()
    assert json.loads((tmp_path / "survey.json").read_text())["samples"] == 20


def test_data_command_names_bad_settings(capsys):
    assert main(["data", "world", "--set", "colour_depth=8"]) == 2
    assert "unknown data setting" in capsys.readouterr().err
    assert main(["data", "csv"]) == 2
    assert "needs `path`" in capsys.readouterr().err


def _png(path, colour=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 12), colour).save(path)
    return path.read_bytes()


def test_data_command_says_which_objectives_an_image_only_shard_serves(tmp_path, capsys):
    payload = _png(tmp_path / "image.png")
    with tarfile.open(tmp_path / "shard.tar", "w") as tar:
        for i in range(39):
            info = tarfile.TarInfo(f"{i:05d}.png")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    assert main(["data", "webdataset", str(tmp_path / "shard.tar"), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "39 good samples" in out and "no bad samples" in out
    assert "captions: 0 of 39 samples \u2192 serves mae, simclr; not mug, clip" in out
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["serves"] == {"mae": 39, "mug": 0, "clip": 0, "simclr": 39} and saved["captioned"] == 0


def test_data_command_counts_captions_and_names_the_path_rule_of_a_tsv(tmp_path, capsys):
    _png(tmp_path / "images" / "good.png")
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image at all")
    (tmp_path / "pairs.tsv").write_text(
        "filepath\ttitle\nimages/good.png\ta red square\nimages/broken.png\ta broken file\n"
        "images/good.png\t   \nimages/good.png\n"
    )
    assert main(["data", "csv", str(tmp_path / "pairs.tsv")]) == 0
    out = capsys.readouterr().out
    # The broken image is a bad sample for every objective; the rows without a caption only for mug, clip.
    assert "3 good samples" in out and "unreadable_image: 1" in out
    assert "captions: 1 of 3 samples \u2192 serves mae, simclr; mug, clip on the 1 captioned" in out
    assert f"image paths: relative image paths resolve against the CSV's folder {tmp_path.resolve()}" in out
    world = build_dataset(DataConfig())
    survey = survey_dataset(world, "world", limit=4, objectives=("mae", "clip"), caption_objectives=("clip",))
    assert survey.serves == {"mae": 4, "clip": 4} and "4 of 4 samples \u2192 serves mae, clip\n" in str(
        survey
    )


def test_data_command_serves_mae_and_simclr_from_a_flat_folder_of_photos(tmp_path, capsys):
    for i in range(6):
        _png(tmp_path / "photos" / f"{i}.png", colour=(40 * i, 10, 10))
    assert main(["data", "imagefolder", str(tmp_path / "photos")]) == 0
    out = capsys.readouterr().out
    assert "6 good samples" in out and "labels:" not in out
    assert "captions: 0 of 6 samples \u2192 serves mae, simclr; not mug, clip" in out
