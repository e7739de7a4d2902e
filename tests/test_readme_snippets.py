"""The README's Python snippets run as written (in order, sharing one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippets_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3, "README lost its library tour"
    namespace: dict = {}
    threads = torch.get_num_threads()
    try:
        for i, code in enumerate(blocks):
            exec(compile(code, f"README.md python block {i}", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    report = namespace["report"]  # the Neural Isometries snippet's comparison
    assert 0 < report["purity_mean"] <= 1 and 0 < report["tau_block_energy"] <= 1
    assert "moment" in namespace and namespace["moment"].shape == (64, 64)
