"""bench/optimizer_curves.py draws docs/optimizer.md's pooling plot: it must keep running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_pooling_plot_is_drawn(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "optimizer_curves.py"), "--out", str(tmp_path)],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    png = tmp_path / "optimizer-pooling.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
