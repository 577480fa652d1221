import numpy as np
import pytest

from infomug.arrays import load_array


@pytest.fixture
def data():
    return np.random.default_rng(0).normal(size=(20, 3))


def test_npy_npz_and_text_tables_load_the_same_numbers(tmp_path, data):
    np.save(tmp_path / "a.npy", data)
    np.savez(tmp_path / "b.npz", features=data, labels=np.arange(20))
    np.savetxt(tmp_path / "c.csv", data, delimiter=",", header="u,v,w", comments="", fmt="%.17g")
    np.savetxt(tmp_path / "d.tsv", data, delimiter="\t", fmt="%.17g")
    np.savetxt(tmp_path / "e.txt", data, fmt="%.17g")
    np.testing.assert_array_equal(load_array(str(tmp_path / "a.npy")), data)
    np.testing.assert_array_equal(load_array(f"{tmp_path / 'b.npz'}:features"), data)
    np.testing.assert_array_equal(load_array(str(tmp_path / "c.csv")), data)
    np.testing.assert_array_equal(load_array(f"{tmp_path / 'c.csv'}:w,u"), data[:, [2, 0]])
    np.testing.assert_array_equal(load_array(f"{tmp_path / 'd.tsv'}:1"), data[:, [1]])
    np.testing.assert_array_equal(load_array(str(tmp_path / "e.txt")), data)


def test_single_array_npz_needs_no_key(tmp_path, data):
    np.savez(tmp_path / "one.npz", only=data)
    np.testing.assert_array_equal(load_array(str(tmp_path / "one.npz")), data)


def test_errors_name_the_problem(tmp_path, data):
    np.savez(tmp_path / "two.npz", a=data, b=data)
    (tmp_path / "bad.csv").write_text("u,v\n1,2\n3,oops\n")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_array(str(tmp_path / "missing.npy"))
    with pytest.raises(ValueError, match=r"holds arrays \['a', 'b'\]; choose one"):
        load_array(str(tmp_path / "two.npz"))
    with pytest.raises(ValueError, match="has no array 'c'"):
        load_array(f"{tmp_path / 'two.npz'}:c")
    with pytest.raises(ValueError, match="line 3, column 'v': 'oops' is not a number"):
        load_array(str(tmp_path / "bad.csv"))
    with pytest.raises(ValueError, match="no column 'z'"):
        load_array(f"{tmp_path / 'bad.csv'}:z")
    with pytest.raises(ValueError, match="line 2: 1 cells, expected 2"):
        load_array(str(tmp_path / "ragged.csv"))
    with pytest.raises(ValueError, match="unsupported file type '.json'"):
        (tmp_path / "x.json").write_text("[]")
        load_array(str(tmp_path / "x.json"))
    with pytest.raises(ValueError, match="pickled"):  # never unpickle a user's file
        load_array(str(tmp_path / "objects.npy"))
