"""estimators is usable without infomug: it must never import it."""

import subprocess
import sys
from pathlib import Path

import estimators


def test_importing_estimators_does_not_import_infomug():
    code = "import sys, estimators.samplers; print(any(m.startswith('infomug') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_estimators_source_mentions_an_infomug_import():
    package = Path(estimators.__file__).parent
    offenders = [
        str(path)
        for path in package.rglob("*.py")
        if "import infomug" in path.read_text() or "from infomug" in path.read_text()
    ]
    assert offenders == []
