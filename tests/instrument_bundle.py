"""A bundle of instrument files in which a v2 of the self-evaluation form has shipped.

``with v2_shipped(tmp_path):`` copies the bundled files into a temporary folder, adds
``self_evaluation.v2.yaml`` whose first indicator is renamed to :data:`V2_TEXT`, and points
``surveys.instruments`` at that folder; leaving the block restores the real bundle. The
caches of parsed files are cleared on the way in and out.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from surveys import instruments

V1_TEXT = "党组织带头人"
V2_TEXT = "第二版带头人指标"


def _clear_caches() -> None:
    instruments._bundled_files.cache_clear()
    instruments._load_bundled.cache_clear()


@contextmanager
def v2_shipped(tmp_path: Path) -> Iterator[None]:
    """Within the block, the newest bundled self-evaluation form is v2."""
    folder = tmp_path / "instruments"
    shutil.copytree(instruments.BUNDLED_DIR, folder)
    v1 = (folder / "self_evaluation.v1.yaml").read_text(encoding="utf-8")
    assert "version: 1\n" in v1 and f"zh: {V1_TEXT}\n" in v1
    v2 = v1.replace("version: 1\n", "version: 2\n").replace(f"zh: {V1_TEXT}\n", f"zh: {V2_TEXT}\n")
    (folder / "self_evaluation.v2.yaml").write_text(v2, encoding="utf-8")
    real = instruments.BUNDLED_DIR
    _clear_caches()
    instruments.BUNDLED_DIR = folder
    try:
        yield
    finally:
        instruments.BUNDLED_DIR = real
        _clear_caches()
