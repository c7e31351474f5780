"""The ``window`` query parameter the figures share (``30d``, ``12h``, ``2w``), as the CLI takes it."""

from __future__ import annotations

from datetime import timedelta

from fastapi import HTTPException  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.config import parse_window

__all__ = ["window"]


def window(text: str) -> timedelta:
    """``text`` as a duration; a bad one is the client's error (422), as in ``--window``."""
    try:
        return parse_window(text)
    except ValueError as exc:
        raise HTTPException(422, f"window: {exc}") from None
