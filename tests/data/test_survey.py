import json

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
    # A map-style reader answers a bad index with the next good sample; those stand-ins are not usable
    # samples: 1 of the 3 rows is, and the two bad rows are counted, by reason.
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
