"""The base of every response model, and the one datetime format they share.

Response models are apart from the spec models (:mod:`airflow_wfe.core.spec`): they describe what a
face returns, not what a user writes, and may grow fields without touching a workflow file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

__all__ = ["IsoDatetime", "JsonModel", "ResponseModel"]


def _iso(value: datetime) -> str:
    return value.isoformat()


#: A datetime serialized by :meth:`datetime.isoformat` (``2026-11-25T10:00:00.123456+00:00``), the
#: format the CLI has always printed; pydantic's own JSON format would write ``Z`` instead.
IsoDatetime = Annotated[datetime, PlainSerializer(_iso, return_type=str, when_used="json")]


class ResponseModel(BaseModel):
    """Frozen, closed: a response is a value, and a misspelt field is a bug, not an extra key."""

    model_config = ConfigDict(frozen=True, extra="forbid")


#: Any response model, a :class:`ResponseModel` or a list (``RootModel``): what a face prints or
#: serializes with ``model_dump(mode="json")``. An alias, so faces need not import pydantic.
JsonModel = BaseModel
