from pathlib import Path

from infomug.checkout import repository_root

ROOT = Path(__file__).resolve().parents[1]


def test_the_checkout_is_found_from_its_notebooks_folder_and_from_anywhere_else(tmp_path):
    assert repository_root(ROOT / "notebooks") == ROOT  # where Jupyter starts a notebook's kernel
    assert repository_root(ROOT) == ROOT
    # Outside the checkout (a notebook copied elsewhere): the editable install's own checkout.
    assert repository_root(tmp_path) == ROOT
