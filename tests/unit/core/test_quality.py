"""Quality checks apart from Great Expectations: reading expectations and reading GX's results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_wfe.core.quality import (
    Finding,
    expectations_from_suite,
    failed,
    findings_of,
    normalize_expectations,
)
from airflow_wfe.exceptions import SpecError


def test_both_inline_forms_read_the_same() -> None:
    short = normalize_expectations([{"expect_column_values_to_not_be_null": {"column": "id"}}])
    long = normalize_expectations(
        [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]
    )
    assert (
        short
        == long
        == [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]
    )


@pytest.mark.parametrize(
    "entry",
    [
        "expect_x",
        {"not_an_expectation": {}},
        {"type": "expect_x", "kwargs": {}, "surprise": 1},
        {"expect_a": {}, "expect_b": {}},
        {"expect_x": [1, 2]},
    ],
)
def test_anything_else_is_refused_naming_its_index(entry: object) -> None:
    with pytest.raises(SpecError, match=r"expectations\[1\]: expected \{type: expect_"):
        normalize_expectations([{"expect_ok": {}}, entry])


def test_no_expectations_is_refused() -> None:
    with pytest.raises(SpecError, match="no expectations to check"):
        normalize_expectations([])


def test_a_suite_file_is_read_and_its_problems_name_the_file(tmp_path: Path) -> None:
    suite = tmp_path / "orders.json"
    suite.write_text(
        json.dumps({"name": "o", "expectations": [{"type": "expect_t", "kwargs": {}}]})
    )
    assert expectations_from_suite(suite) == [{"type": "expect_t", "kwargs": {}}]
    suite.write_text("{not json")
    with pytest.raises(SpecError, match=r"orders\.json") as caught:
        expectations_from_suite(suite)
    assert "not a JSON suite" in str(caught.value)
    with pytest.raises(SpecError, match="cannot read the suite"):
        expectations_from_suite(tmp_path / "missing.json")


def test_findings_say_what_failed_with_a_few_values_each_cut_short() -> None:
    result = {
        "success": False,
        "results": [
            {
                "success": False,
                "expectation_config": {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": "c", "value_set": ["a"], "batch_id": "x"},
                },
                "result": {
                    "element_count": 100,
                    "unexpected_count": 40,
                    "partial_unexpected_list": ["b", "z" * 500, 3, 4, 5, 6, 7],
                },
            },
            {
                "success": True,
                "expectation_config": {
                    "type": "expect_table_row_count_to_be_between",
                    "kwargs": {},
                },
                "result": {"observed_value": 100},
            },
        ],
    }
    findings = findings_of(result)
    (bad,) = failed(findings)
    assert len(bad.examples) == 5
    assert len(bad.examples[1]) == 60
    assert bad.message.startswith(
        "expect_column_values_to_be_in_set(column='c', value_set=['a']): 40 of 100 values "
        "unexpected, e.g. 'b', 'zzz"
    )
    assert findings[1].message == "expect_table_row_count_to_be_between(): met"
    assert Finding("expect_m", {}, False, observed="3.5").message == "expect_m(): observed 3.5"
