"""The notebooks: each ``notebooks/NN_*.ipynb`` is the jupytext conversion of the ``.py`` beside it, and runs
top to bottom in smoke mode (``INFOMUG_NOTEBOOK_MODE=smoke``) producing the figures and tables it promises,
with its kernel started in ``notebooks/`` as Jupyter starts it. The checks themselves are tested too: a
stale ``.ipynb`` and a raising cell must fail them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
KERNEL = "python3"
CELL_TIMEOUT_S = 120

# What each notebook must show when it runs in smoke mode: at least this many figures (image/png
# outputs) and markdown tables (text/markdown outputs holding a table), and text its outputs must contain.
EXPECTED = {
    "01_estimators_vs_ground_truth": {"figures": 6, "tables": 0, "says": ["truth 0.500  KSG", "reason:"]},
    "02_measure_a_checkpoint": {
        "figures": 6,
        "tables": 4,
        "says": [
            "pixel_decoder:",
            "caption_decoder:",
            "ceiling I(image; caption)",
            "σ = 10 (whitened) | H(T)",
        ],
    },
    "03_lambda_ablation": {
        "figures": 4,
        "tables": 2,
        "says": ["Spearman ρ", "| mug_1.0 | mug | 1 | 2 |", "σ = 10 | RankMe", "2 seeds: half-width"],
    },
}


def _dependencies():
    """jupytext, nbformat and nbclient, or a failure naming how to install them (they are dev extras)."""
    try:
        import jupytext as jt
        import nbformat
        from nbclient import NotebookClient
    except ImportError as error:
        pytest.fail(
            f"{error}: the notebook tests need jupytext, nbclient and ipykernel (pip install -e '.[dev]')"
        )
    return jt, nbformat, NotebookClient


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _mismatch(source: Path) -> str | None:
    """Why ``source``'s ``.ipynb`` is not its current jupytext conversion without outputs, or None."""
    jt, nbformat, _ = _dependencies()
    regenerate = f"regenerate it with: jupytext --to ipynb {_shown(source)}"
    ipynb = source.with_suffix(".ipynb")
    if not ipynb.is_file():
        return f"{ipynb.name} is missing; {regenerate}"
    stored = nbformat.read(ipynb, as_version=4)
    if _cells(stored) != _cells(jt.read(source)):
        return f"{ipynb.name} differs from {source.name}; {regenerate}"
    for cell in stored.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            return f"{ipynb.name} stores outputs; keep it small: {regenerate}"
    return None


def test_every_notebook_is_listed():
    assert SOURCES, f"no notebooks/NN_*.py found under {NOTEBOOKS}"
    assert sorted(EXPECTED) == [source.stem for source in SOURCES], "EXPECTED must name every notebook"
    orphans = [
        path.name for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb") if not path.with_suffix(".py").is_file()
    ]
    assert not orphans, f"notebooks without a .py source (edit the .py, not the .ipynb): {orphans}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
def test_ipynb_matches_its_source(source: Path):
    problem = _mismatch(source)
    assert problem is None, problem


def test_a_stale_or_executed_ipynb_is_caught(tmp_path: Path):
    jt, nbformat, _ = _dependencies()
    source = tmp_path / "00_example.py"
    source.write_text('# %% [markdown]\n# # Example\n\n# %%\nprint("one")\n', encoding="utf-8")
    jt.write(jt.read(source), source.with_suffix(".ipynb"))
    assert _mismatch(source) is None

    source.write_text(source.read_text(encoding="utf-8") + '\n# %%\nprint("two")\n', encoding="utf-8")
    assert "differs from" in _mismatch(source)

    notebook = jt.read(source)
    notebook.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="two\n")]
    nbformat.write(notebook, source.with_suffix(".ipynb"))
    assert "stores outputs" in _mismatch(source)


def _kernel_available() -> None:
    try:
        from jupyter_client.kernelspec import NoSuchKernel, get_kernel_spec
    except ImportError as error:
        pytest.fail(f"{error}: install jupyter_client and ipykernel (pip install -e '.[dev]')")
    try:
        get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(f"no '{KERNEL}' Jupyter kernel: install ipykernel (pip install -e '.[dev]')")
    try:
        import ipykernel  # noqa: F401  # the spec can exist while the package that runs it does not
    except ImportError as error:
        pytest.fail(f"{error}: the '{KERNEL}' kernel needs ipykernel (pip install -e '.[dev]')")


def _execute(notebook, monkeypatch, mode: str = "smoke") -> None:
    """Run ``notebook`` in place in ``mode`` with the kernel in ``notebooks/`` (where Jupyter starts the
    kernel of a notebook there); raises CellExecutionError (naming the cell and the traceback) at the first
    cell that raises."""
    _, _, NotebookClient = _dependencies()
    _kernel_available()
    # The kernel inherits this environment. Inline figures are what the test looks for, whatever
    # backend the caller's environment names; one thread keeps the tiny computations fast.
    monkeypatch.setenv("INFOMUG_NOTEBOOK_MODE", mode)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()


def test_a_raising_cell_fails_the_run(monkeypatch):
    _, nbformat, _ = _dependencies()
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('the notebook broke')"),
        nbformat.v4.new_code_cell("print('never reached')"),
    ]
    with pytest.raises(CellExecutionError, match="the notebook broke"):
        _execute(notebook, monkeypatch)
    assert not notebook.cells[2].outputs


def _outputs(notebook, output_type: str | None = None) -> list:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output_type is None or output.output_type == output_type
    ]


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.stem)
def test_notebook_runs_in_smoke_mode(source: Path, monkeypatch):
    _, nbformat, _ = _dependencies()
    ipynb = source.with_suffix(".ipynb")
    if not ipynb.is_file():
        pytest.fail(f"{_shown(ipynb)} is missing: jupytext --to ipynb {_shown(source)}")
    notebook = nbformat.read(ipynb, as_version=4)
    _execute(notebook, monkeypatch)

    errors = _outputs(notebook, "error")
    assert not errors, f"{ipynb.name}: {errors[0].ename}: {errors[0].evalue}"
    data = [output.get("data", {}) for output in _outputs(notebook) if "data" in output]
    figures = sum("image/png" in item for item in data)
    tables = sum("|---" in item.get("text/markdown", "") for item in data)
    expected = EXPECTED[source.stem]
    assert figures >= expected["figures"], f"{ipynb.name}: {figures} figures, expected {expected['figures']}"
    assert tables >= expected["tables"], (
        f"{ipynb.name}: {tables} markdown tables, expected {expected['tables']}"
    )
    text = "".join(output.get("text", "") for output in _outputs(notebook, "stream"))
    text += "".join(item.get("text/markdown", "") + item.get("text/plain", "") for item in data)
    assert "mode: smoke" in text, f"{ipynb.name} did not report running in smoke mode"
    for snippet in expected["says"]:
        assert snippet in text, f"{ipynb.name}: no output contains {snippet!r}"


COMMITTED_RESULTS = ROOT / "experiments" / "results" / "ablation" / "ablation.json"


@pytest.mark.skipif(
    not COMMITTED_RESULTS.is_file(), reason="the committed sweep results are not in this checkout"
)
def test_the_ablation_notebook_reads_the_committed_results_in_full_mode(monkeypatch):
    # Full mode of 03 only reads a file (seconds): the one notebook whose full mode a test can afford.
    _, nbformat, _ = _dependencies()
    notebook = nbformat.read(NOTEBOOKS / "03_lambda_ablation.ipynb", as_version=4)
    _execute(notebook, monkeypatch, mode="full")
    assert not _outputs(notebook, "error")
    text = "".join(output.get("text", "") for output in _outputs(notebook, "stream"))
    assert "mode: full" in text and "sweep 'ablation_cpu'" in text, text[:500]
