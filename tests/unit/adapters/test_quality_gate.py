"""The quality gate at DAG parse time: its mistakes are import errors, and it loads neither GX nor
pandas (a DAG file is parsed again in every task process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airflow_wfe import QualityGateOperator
from airflow_wfe.exceptions import SpecError

CHECK = [{"expect_column_values_to_not_be_null": {"column": "id"}}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expectations": CHECK}, "give exactly one data source"),
        ({"expectations": CHECK, "data_from": "a", "path": "b.csv"}, "found: data_from, path"),
        ({"expectations": CHECK, "conn_id": "db"}, "with conn_id, give sql or table"),
        ({"expectations": CHECK, "data_from": "a", "severity": "maybe"}, "'deny' or 'warn'"),
        ({"data_from": "a"}, "give expectations, a suite file, or both"),
    ],
)
def test_a_misconfigured_gate_is_refused_when_the_dag_is_parsed(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        QualityGateOperator(task_id="check", **kwargs)


def test_a_typo_in_an_expectation_is_refused_at_parse_time() -> None:
    with pytest.raises(SpecError, match=r"expectations\[0\]"):
        QualityGateOperator(task_id="check", data_from="a", expectations=[{"column": "id"}])


def test_declaring_a_quality_gate_loads_neither_great_expectations_nor_pandas() -> None:
    code = (
        "import sys\n"
        "from airflow_wfe import QualityGateOperator, quality_gate\n"
        f"QualityGateOperator(task_id='c', data_from='a', expectations={CHECK!r})\n"
        "print(sorted({'pandas', 'great_expectations'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
