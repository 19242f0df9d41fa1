"""Specs and the cost model import no solver (STYLE.md: only formulations may)."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_without_solvers():
    code = (
        "import sys\n"
        "for name in ('pulp', 'ortools', 'highspy'):\n"
        "    sys.modules[name] = None\n"
        "import planner, planner.costmodel.training, planner.validation, planner.cli\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
