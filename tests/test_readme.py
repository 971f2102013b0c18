"""The README's quick start runs as written (in a fresh process, from a scratch directory)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import need_binaries

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block() -> str:
    text = README.read_text()
    match = re.search(r"<!-- readme-test[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its tested quick-start block"
    return match.group(1)


@pytest.mark.slow
def test_readme_quick_start_runs(tmp_path):
    need_binaries("flite")
    code = readme_block() + "\nassert answer['text'] and 0 <= answer['start_time'] < answer['end_time']\n"
    code += "assert type(model).__module__.startswith('transformers_modules.')\nprint('README OK')\n"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(README.parent), HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "README OK" in result.stdout
    assert (tmp_path / "outputs/readme-checkpoint/modeling_speechbert.py").exists()
