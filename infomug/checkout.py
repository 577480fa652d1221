"""Where this infomug checkout lives, for code that runs outside its root (notebooks, scripts)."""

from __future__ import annotations

from pathlib import Path

import infomug


def repository_root(start: str | Path | None = None) -> Path:
    """The checkout holding the configs and committed results, wherever the caller started.

    Jupyter starts a kernel in `notebooks/`, ``python notebooks/NN_*.py`` in the root: the first folder
    from ``start`` (default: the working folder) upwards that holds ``experiments/configs/`` and
    ``infomug/``, else the one that holds the installed package (an editable install).

    Raises:
        FileNotFoundError: when neither is a checkout (a non-editable install has no configs).
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents, Path(infomug.__file__).resolve().parents[1]):
        if (folder / "experiments" / "configs").is_dir() and (folder / "infomug").is_dir():
            return folder
    raise FileNotFoundError(f"no infomug checkout (a folder with experiments/configs/) above {here}")
