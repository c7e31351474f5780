"""Reading policy files: every ``*.yaml``/``*.yml`` of ``[wfe] policy_path``, validated strictly.

A policy's version is its own ``version`` label plus the hash of its content, so a decision names
exactly the rules it was made with even when someone edits a file without bumping the label.

Files load independently: one broken file does not take the others down. It is never skipped
silently either: a gate that names only policies that loaded decides with them; a gate that takes
every policy (names none), or names one that is missing while a file is broken, fails closed with
every broken file named, since the broken one might have been the policy that denies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from airflow_wfe.core.policy.engine import LoadedPolicy
from airflow_wfe.core.policy.models import Policy, Stage
from airflow_wfe.exceptions import PolicyError, SpecError

__all__ = [
    "PolicySet",
    "load_policy_file",
    "load_policy_folder",
    "load_policy_set",
    "load_policy_set_cached",
    "parse_policy",
    "select",
]

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


@dataclass(frozen=True)
class PolicySet:
    """The policies of a folder that loaded, and the error of each file that did not.

    Attributes:
        policies: valid policies, by file name order, each name once.
        broken: per broken file, its error (:class:`SpecError` with every problem and line, or
            :class:`PolicyError` for an unreadable file or a name declared twice).
    """

    policies: tuple[LoadedPolicy, ...] = ()
    broken: tuple[SpecError | PolicyError, ...] = ()

    def select(self, names: Iterable[str]) -> list[LoadedPolicy]:
        """The policies a gate asks for (see :func:`select`), failing closed on broken files."""
        return select(self.policies, names, broken=self.broken)

    def for_stage(self, stage: Stage) -> list[LoadedPolicy]:
        """The policies evaluated at ``stage`` (their ``stages`` name it)."""
        return [p for p in self.policies if stage in p.policy.stages]

    def strict(self) -> list[LoadedPolicy]:
        """Every policy, or an error naming every broken file (for budgets: all must hold)."""
        if len(self.broken) == 1:
            raise self.broken[0]
        if self.broken:
            raise PolicyError("policy_path", _broken_text(self.broken))
        return list(self.policies)


def load_policy_set(folder: Path) -> PolicySet:
    """Every policy file of ``folder`` (none when it does not exist), each loaded on its own."""
    if not folder.is_dir():
        return PolicySet()
    loaded: dict[str, LoadedPolicy] = {}
    broken: list[SpecError | PolicyError] = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in _SUFFIXES and p.is_file()):
        try:
            policy = load_policy_file(path)
        except (SpecError, PolicyError) as exc:
            broken.append(exc)
            continue
        other = loaded.get(policy.policy.name)
        if other is not None:
            broken.append(
                PolicyError(
                    str(path), f"policy {policy.policy.name!r} is also declared in {other.source}"
                )
            )
            continue
        loaded[policy.policy.name] = policy
    return PolicySet(tuple(loaded.values()), tuple(broken))


_CACHE: dict[Path, tuple[tuple[tuple[str, int, int], ...], PolicySet]] = {}


def load_policy_set_cached(folder: Path) -> PolicySet:
    """:func:`load_policy_set`, read again only when a file of ``folder`` changed (name, size or
    modification time): for processes that evaluate policies at every run start (the scheduler),
    where parsing and compiling the same files each time would cost milliseconds per run."""
    if not folder.is_dir():
        return PolicySet()
    signature = tuple(
        sorted(
            (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in folder.iterdir()
            if entry.suffix in _SUFFIXES and entry.is_file()
        )
    )
    cached = _CACHE.get(folder)
    if cached is not None and cached[0] == signature:
        return cached[1]
    loaded = load_policy_set(folder)
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[folder] = (signature, loaded)
    return loaded


def load_policy_folder(folder: Path) -> list[LoadedPolicy]:
    """Every policy of ``folder`` (none when it does not exist), by name; all must be valid.

    Raises:
        SpecError: one file is invalid (every problem of it, with lines).
        PolicyError: several files are broken (each named), or two declare the same policy name.
    """
    return load_policy_set(folder).strict()


def _broken_text(broken: Sequence[SpecError | PolicyError]) -> str:
    return f"{len(broken)} policy file(s) could not be loaded: " + "; ".join(
        str(error) for error in broken
    )


def select(
    available: Sequence[LoadedPolicy],
    names: Iterable[str],
    *,
    broken: Sequence[SpecError | PolicyError] = (),
) -> list[LoadedPolicy]:
    """The policies a gate asks for by name (every ``gate``-stage policy when it names none).

    Raises:
        PolicyError: a name is not among the available policies, or the gate takes every policy
            while some file is broken; the message names every broken file.
    """
    wanted = list(names)
    if not wanted:
        if broken:
            raise PolicyError("gate", f"it takes every policy, and {_broken_text(broken)}")
        return [p for p in available if Stage.GATE in p.policy.stages]
    by_name = {p.policy.name: p for p in available}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        known = ", ".join(sorted(by_name)) or "none"
        also = f"; {_broken_text(broken)}" if broken else ""
        raise PolicyError(
            "gate",
            f"unknown policy {', '.join(missing)} (policies in policy_path: {known}){also}",
        )
    return [by_name[n] for n in wanted]
