"""Specs, the cost model and the solver-free planning layers import no solver (STYLE.md:
only formulations may), and nothing but the GPU scripts imports PyTorch."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_without_solvers():
    code = (
        "import sys\n"
        "for name in ('pulp', 'ortools', 'highspy', 'torch'):\n"
        "    sys.modules[name] = None\n"
        "import planner, planner.costmodel.training, planner.validation, planner.cli\n"
        "import planner.candidates, planner.configs, planner.layouts, planner.solution\n"
        "import planner.check, planner.diagnose, planner.describe, planner.simulate\n"
        "import planner.bubbles, planner.formulations.index, planner.heuristics.greedy\n"
        "import planner.heuristics.exhaustive, planner.calibrate.fit, planner.calibrate.e2e\n"
        "import planner.launch, planner.launchers, planner.explanation, planner.schema\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
