"""Every YAML spec the README shows loads as written: a user copying one gets no surprise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from migrate.spec import PipelineSpec
from migrate.spec.load import parse_spec

README = Path(__file__).parents[4] / "README.md"
BLOCKS = re.findall(r"^```yaml\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_shows_specs() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: str(yaml.safe_load(b).get("name")))
def test_a_readme_spec_loads_as_written(block: str, tmp_path: Path) -> None:
    raw = yaml.safe_load(block)
    for output in raw["outputs"].values():  # sql_file paths are the user's: stand-ins for them
        sql_file = output.get("batch", {}).get("sql_file")
        if sql_file:
            (tmp_path / sql_file).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / sql_file).write_text("SELECT 1")
    spec = parse_spec(raw, "README.md", tmp_path)
    assert isinstance(spec, PipelineSpec)
    assert spec.outputs and spec.stream.group
    assert spec.is_external or spec.stream.pipeline is not None  # the user's job, or dualrun's runner
    assert spec.cdc.position_header == "dbz.source"
