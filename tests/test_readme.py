"""The README's Python examples marked `<!-- test: run -->` run as written, on the embedded default model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wildactor.default_model import DEFAULT_MODEL_DIR

README = Path(__file__).resolve().parents[1] / "README.md"
MARKED_BLOCK = re.compile(r"<!-- test: run -->\n```python\n(.*?)\n```", re.S)


def runnable_blocks() -> list[str]:
    return MARKED_BLOCK.findall(README.read_text())


def test_the_readme_marks_its_runnable_examples():
    blocks = runnable_blocks()
    assert len(blocks) >= 2
    assert any("WildActorPipeline.from_pretrained(DEFAULT_MODEL_DIR)" in b for b in blocks)


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model_index.json").is_file(), reason="no shipped default model")
@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_python_example_runs_as_written(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples write relative paths such as out/...
    code = runnable_blocks()[index]
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    for comment in re.findall(r"^# .*?: (\[\(.*\)\])$", code, re.M):  # "# ...: [(5, 64, 64, 3), ...]"
        assert comment in printed
