"""Reading policy files: every ``*.yaml``/``*.yml`` of ``[wfe] policy_path``, validated strictly.

A policy's version is its own ``version`` label plus the hash of its content, so a decision names
exactly the rules it was made with even when someone edits a file without bumping the label. A broken
file is an error, never skipped: a gate that silently lost a policy would allow what it should deny.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from airflow_wfe.core.policy.engine import LoadedPolicy
from airflow_wfe.core.policy.models import Policy
from airflow_wfe.exceptions import PolicyError

__all__ = ["load_policy_file", "load_policy_folder", "parse_policy", "select"]

_SUFFIXES = (".yaml", ".yml")


def parse_policy(text: str, *, file: str = "<string>") -> LoadedPolicy:
    """Validate one policy document.

    Raises:
        SpecError: with the file, line and key path of every problem.
    """
    from airflow_wfe.core.spec.loader import parse_document

    policy, content_hash, _lines = parse_document(
        text, file=file, model=Policy, what="a policy needs name and rules"
    )
    return LoadedPolicy(policy, content_hash, file)


def load_policy_file(path: Path) -> LoadedPolicy:
    """Read and validate one policy file (see :func:`parse_policy`)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), f"cannot read the policy file: {exc}") from None
    return parse_policy(text, file=str(path))


def load_policy_folder(folder: Path) -> list[LoadedPolicy]:
    """Every policy of ``folder`` (none when it does not exist), by name.

    Raises:
        SpecError: a file is invalid (every problem of the first bad file).
        PolicyError: two files declare the same policy name.
    """
    if not folder.is_dir():
        return []
    loaded: dict[str, LoadedPolicy] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix in _SUFFIXES and p.is_file()):
        policy = load_policy_file(path)
        other = loaded.get(policy.policy.name)
        if other is not None:
            raise PolicyError(
                str(path), f"policy {policy.policy.name!r} is also declared in {other.source}"
            )
        loaded[policy.policy.name] = policy
    return list(loaded.values())


def select(available: Sequence[LoadedPolicy], names: Iterable[str]) -> list[LoadedPolicy]:
    """The policies a gate asks for by name (all of them when it names none).

    Raises:
        PolicyError: a name is not among the available policies.
    """
    wanted = list(names)
    if not wanted:
        return list(available)
    by_name = {p.policy.name: p for p in available}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        known = ", ".join(sorted(by_name)) or "none"
        raise PolicyError(
            "gate", f"unknown policy {', '.join(missing)} (policies in policy_path: {known})"
        )
    return [by_name[n] for n in wanted]
