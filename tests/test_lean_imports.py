"""The running bot loads no spreadsheet, chart or data-frame library until someone asks for a
file (issue 12, memory): pandas, matplotlib and openpyxl are most of an idle process's memory
(about 80 MB of the 180 MB its imports take), and a township's bot spends its days answering taps.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "matplotlib", "openpyxl", "numpy", "qrcode")


def _loaded_by(statement: str) -> list[str]:
    probe = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_ceping_run_and_the_jobs_load_no_file_library() -> None:
    loaded = _loaded_by("import bot.cli, bot.cli.parser, bot.cli.running, bot.app, jobs.runner")
    assert loaded == []


def test_the_file_libraries_still_load_when_a_file_is_made() -> None:
    loaded = _loaded_by("import bot.charts, bot.workbook, storage.roster; storage.roster.pandas()")
    assert {"matplotlib", "openpyxl", "pandas"} <= set(loaded)
