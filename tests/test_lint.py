"""SQL style: sqlfluff with the dbt templater against the in-memory lint target."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orchestration.settings import PROJECT_DIR


def test_sqlfluff_lint_passes() -> None:
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    result = subprocess.run(
        # every model and data test, every time; the dbt templater renders in this process
        # (about 1 % of the time per file), parsing and rule checks run on two cores
        [str(sqlfluff), "lint", "models", "data-tests", "--disable-progress-bar", "--nocolor",
         "--processes", "2"],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
