"""`infomug mi` and `infomug entropy` as a new user runs them, in-process through main(argv)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from estimators.samplers import GaussianSampler
from infomug.cli import main


@pytest.fixture
def saved(tmp_path):
    sampler = GaussianSampler.sparse(2, 2, 0.8)
    x, y = sampler.sample(1500, rng=0)
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "Y.npy", y)
    np.savez(tmp_path / "both.npz", features=x, labels=(y[:, 0] > 0).astype(int))
    np.savetxt(tmp_path / "table.csv", np.c_[x, y], delimiter=",", header="a,b,c,d", comments="", fmt="%.17g")
    return tmp_path, sampler.mutual_information()


def test_mi_prints_nats_bits_and_uncertainty_and_writes_json(saved, capsys):
    folder, truth = saved
    out_json = folder / "out" / "mi.json"
    assert (
        main(["mi", str(folder / "X.npy"), str(folder / "Y.npy"), "--method", "ksg", "--json", str(out_json)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "nats" in printed and "bits" in printed and "±" in printed and "95% CI" in printed
    result = json.loads(out_json.read_text())
    assert result["method"] == "ksg1" and result["n"] == 1500
    assert result["bits"] == pytest.approx(result["value"] / math.log(2))
    assert abs(result["value"] - truth) <= 0.03 + 4 * result["stderr"]


def test_csv_columns_give_the_same_answer_as_npy(saved, capsys):
    folder, _ = saved
    main(["mi", str(folder / "X.npy"), str(folder / "Y.npy"), "--no-uncertainty"])
    from_npy = capsys.readouterr().out.split("[")[0]
    main(["mi", f"{folder / 'table.csv'}:a,b", f"{folder / 'table.csv'}:c,d", "--no-uncertainty"])
    assert capsys.readouterr().out.split("[")[0] == from_npy


def test_methods_and_options(saved, capsys):
    folder, _ = saved
    npz = folder / "both.npz"
    assert main(["mi", f"{npz}:features", f"{npz}:labels", "--method", "ross", "--k", "5"]) == 0
    assert "[ross: k=5" in capsys.readouterr().out
    argv = ["mi", str(folder / "X.npy"), str(folder / "Y.npy"), "--method", "ksg", "--algorithm", "2"]
    assert main([*argv, "--k", "3", "5"]) == 0
    assert "[ksg2: k=[3, 5]" in capsys.readouterr().out
    assert main(["entropy", str(folder / "X.npy"), "--method", "gaussian"]) == 0
    assert "H = " in capsys.readouterr().out


def test_auto_neural_options_and_the_noise_channel(saved, capsys):
    folder, truth = saved
    assert main(["mi", str(folder / "X.npy"), str(folder / "Y.npy")]) == 0
    assert "auto chose ksg1" in capsys.readouterr().out
    argv = [
        "mi",
        str(folder / "X.npy"),
        str(folder / "Y.npy"),
        "--method",
        "infonce",
        "--option",
        "batch_size=64",
    ]
    assert main(argv) == 0
    assert "(lower bound)" in capsys.readouterr().out
    out_json = folder / "channel.json"
    argv = ["channel", str(folder / "X.npy"), "--relative-sigma", "0.1", "1.0", "--json", str(out_json)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("I = ") == 2 and "property of the noise" in printed
    assert [entry["params"]["relative_sigma"] for entry in json.loads(out_json.read_text())] == [0.1, 1.0]


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["missing.npy", "Y.npy"], "no such file"),
        (["both.npz", "Y.npy"], "choose one"),
        (["X.npy", "Y.npy", "--method", "gaussian", "--k", "3"], "does not take --k"),
        (["X.npy", "Y.npy", "--method", "copula", "--algorithm", "2"], "does not take --algorithm"),
        (["X.npy", "Y.npy", "--method", "nwj", "--no-uncertainty"], "does not take --no-uncertainty"),
        (["X.npy", "Y.npy", "--method", "infonce", "--option", "batch_sise=8"], "batch_sise"),
        (["X.npy", "short.npy"], "mismatched lengths"),
        (["nan.npy", "Y.npy"], "NaN"),
    ],
)
def test_bad_input_exits_2_with_a_message(saved, capsys, argv_tail, message):
    folder, _ = saved
    np.save(folder / "short.npy", np.zeros((10, 1)))
    nan = np.load(folder / "X.npy")
    nan[3, 1] = np.nan
    np.save(folder / "nan.npy", nan)
    argv = ["mi"] + [str(folder / arg) if arg.endswith((".npy", ".npz")) else arg for arg in argv_tail]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command(saved):
    folder, _ = saved
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "infomug",
            "mi",
            str(folder / "X.npy"),
            str(folder / "Y.npy"),
            "--no-uncertainty",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("I = ")
