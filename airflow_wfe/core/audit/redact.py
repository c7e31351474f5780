"""Keeping secrets out of the trail: key names that hide their values, plus Airflow's own masker.

The store is read by auditors and exported to other systems, so anything that could carry a secret
(run parameters, error messages, reasons) is redacted before it is written, in the trail and in the
state tables alike. Two layers: values under sensitive key names (ours plus ``[wfe] audit_redact``)
become ``***``; and a pluggable *masker*, in Airflow processes Airflow's secrets masker, replaces every
secret value it knows (connection passwords, sensitive variables, ``mask_secret`` calls) wherever it
appears inside text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

__all__ = ["DEFAULT_SENSITIVE_NAMES", "MASK", "Redactor"]

MASK: Final = "***"
#: Key-name fragments whose values are always hidden (case-insensitive substring match); the same
#: spirit as Airflow's ``[core] sensitive_var_conn_names`` defaults.
DEFAULT_SENSITIVE_NAMES: Final = (
    "access_token",
    "api_key",
    "apikey",
    "authorization",
    "credential",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "secret",
    "token",
)

Masker = Callable[[str], str]

#: Exact types that hold no text to mask.
_UNMASKED: Final = frozenset({int, float, bool, type(None)})
#: The same plus text, when there is no masker to apply to text.
_UNMASKED_TEXT: Final = _UNMASKED | {str}
_CACHE_SIZE: Final = 4096
#: How deep :meth:`Redactor.sensitive_values` walks (a bound against self-referencing data).
_MAX_DEPTH: Final = 32


class Redactor:
    """Redacts data before it reaches the store.

    Args:
        names: key-name fragments whose values are hidden.
        masker: replaces known secret values inside a text (Airflow's masker in Airflow processes).
    """

    def __init__(
        self, names: Iterable[str] = DEFAULT_SENSITIVE_NAMES, masker: Masker | None = None
    ) -> None:
        self.names = tuple(sorted({n.strip().lower() for n in names if n.strip()}))
        self.masker = masker
        #: ``sensitive`` by key: payloads reuse a handful of keys, and the substring scan is the
        #: redactor's main cost. Bounded: cleared when it grows past ``_CACHE_SIZE``.
        self._sensitive: dict[str, bool] = {}

    def sensitive(self, key: str) -> bool:
        """Whether values under ``key`` are hidden whatever they hold."""
        known = self._sensitive.get(key)
        if known is None:
            lowered = key.lower()
            known = any(name in lowered for name in self.names)
            if len(self._sensitive) >= _CACHE_SIZE:
                self._sensitive.clear()
            self._sensitive[key] = known
        return known

    def text(self, value: str | None) -> str | None:
        """A free text (a reason, an error message) with every known secret value masked."""
        if value is None or self.masker is None:
            return value
        return self.masker(value)

    def __call__(self, value: Any) -> Any:
        """``value`` with secrets hidden: walks mappings and sequences, masks every string."""
        kind = type(value)
        if kind in _UNMASKED or (kind is str and self.masker is None):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            sensitive = self.sensitive
            plain = _UNMASKED if self.masker is not None else _UNMASKED_TEXT
            return {
                k: MASK
                if isinstance(k, str) and sensitive(k) and v
                else v
                if type(v) in plain
                else self(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value

    def sensitive_values(self, data: Any) -> list[str]:
        """Every value ``data`` holds under a sensitive key name, at any depth, as text: what to
        register with Airflow's masker so that a text quoting it is masked too. A mapping or list
        under a sensitive key gives all of its leaves (``{"password": {"db": "x"}}`` gives
        ``x``); ``{"db": {"password": "x"}}`` gives ``x`` as well, which a walk of the top level
        alone misses (``params.db.password``, ``conf.cfg.secret``)."""
        found: list[str] = []
        self._collect(data, False, found, 0)
        return found

    def _collect(self, value: Any, hidden: bool, found: list[str], depth: int) -> None:
        if depth > _MAX_DEPTH or value is None or value == "" or isinstance(value, bool):
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                self._collect(
                    item, hidden or (isinstance(key, str) and self.sensitive(key)), found, depth + 1
                )
        elif isinstance(value, list | tuple):
            for item in value:
                self._collect(item, hidden, found, depth + 1)
        elif hidden:
            found.append(value if isinstance(value, str) else str(value))
