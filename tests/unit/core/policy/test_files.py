"""Policy folders: each file loads on its own, and a broken one is never skipped silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_wfe.core.policy import load_policy_folder, load_policy_set
from airflow_wfe.exceptions import PolicyError, SpecError

GOOD = "name: {name}\nrules:\n  - {{id: r, when: 'true', decision: deny, reason: nope}}\n"
BROKEN = "name: broken\nrules:\n  - id: r\n    when: 'run.x =='\n    decision: deny\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "a.yaml").write_text(GOOD.format(name="alpha"))
    (tmp_path / "b.yaml").write_text(BROKEN)
    (tmp_path / "c.yml").write_text(GOOD.format(name="gamma"))
    (tmp_path / "d.yaml").write_text("name: [unclosed\n")
    (tmp_path / "e.yaml").write_text(GOOD.format(name="alpha"))
    return tmp_path


def test_one_broken_file_leaves_the_others_usable(folder: Path) -> None:
    loaded = load_policy_set(folder)
    assert [p.policy.name for p in loaded.policies] == ["alpha", "gamma"]
    broken = [str(e) for e in loaded.broken]
    assert len(broken) == 3
    assert f"{folder / 'b.yaml'}" in broken[0]
    assert "b.yaml:4" in broken[0]
    assert f"{folder / 'd.yaml'}" in broken[1]
    assert "policy 'alpha' is also declared in" in broken[2]
    assert [p.policy.name for p in loaded.select(["gamma"])] == ["gamma"]


def test_a_gate_that_takes_every_policy_fails_closed_naming_every_broken_file(
    folder: Path,
) -> None:
    loaded = load_policy_set(folder)
    with pytest.raises(PolicyError) as caught:
        loaded.select([])
    message = str(caught.value)
    assert "3 policy file(s) could not be loaded" in message
    for name in ("b.yaml", "d.yaml", "e.yaml"):
        assert name in message
    with pytest.raises(PolicyError, match=r"unknown policy broken .*could not be loaded"):
        loaded.select(["broken"])


def test_the_strict_reading_reports_every_broken_file_not_only_the_first(folder: Path) -> None:
    with pytest.raises(PolicyError, match="3 policy file"):
        load_policy_folder(folder)
    (folder / "d.yaml").unlink()
    (folder / "e.yaml").unlink()
    with pytest.raises(SpecError, match=r"b\.yaml"):
        load_policy_folder(folder)
