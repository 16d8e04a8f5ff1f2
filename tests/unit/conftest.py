"""Unit tests run from an empty folder, so a `./dualrun.yaml` where pytest was started never leaks in.

Without this, `load_spec(None)` and every CLI call without `--spec` read the user's own spec (the
README's try-it copies one into the checkout) instead of the packaged example.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(where)
    return where
