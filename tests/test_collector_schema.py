"""The collector's compiled record schema (probe/collector/schema.py) against the reference,
jsonschema: the same verdict on real records and on records with any value replaced by any
other, the shipped copy equal to docs/record.schema.json, and keywords it does not check
refused when the schema is compiled."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.collector import SchemaError, bundled_schema, compile_schema, record_check
from tests.collector_helpers import lines_of, synthetic_files
from tests.loopback_world import SCHEMA_PATH, schema_validator

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["AS13335", "AS1\n", "IR", "ir", "2024-03-01 00:00:00", "obfuscated2"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    root = synthetic_files(tmp_path_factory.mktemp("synthetic"), vantages=1)
    found = [json.loads(line) for line in lines_of(root)]
    # one of each shape: the targets differ in what their test keys hold
    by_input: dict[str, dict[str, Any]] = {}
    for record in found:
        by_input.setdefault(f"{record['input']}/{record['test_keys']['verdict']['status']}", record)
    return list(by_input.values())


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def test_the_shipped_schema_is_the_documented_one() -> None:
    assert bundled_schema() == json.loads(SCHEMA_PATH.read_text())


def test_real_records_pass_both(records: list[dict[str, Any]]) -> None:
    check, reference = record_check(), schema_validator()
    assert len(records) > 5
    for record in records:
        assert reference.is_valid(record)
        assert check(record) is None


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_same_verdict_as_jsonschema_on_mutated_records(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    check, reference = record_check(), schema_validator()
    record = copy.deepcopy(data.draw(st.sampled_from(records)))
    path = data.draw(st.sampled_from(_paths(record)[1:]))
    parent = record
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    expected = reference.is_valid(record)
    problem = check(record)
    assert (problem is None) == expected, (path, problem)


def test_problems_name_where(records: list[dict[str, Any]]) -> None:
    record = copy.deepcopy(records[0])
    record["test_keys"]["tcp_connect"][0]["port"] = "443"
    problem = record_check()(record)
    assert problem is not None and problem.startswith("test_keys.tcp_connect[0].port")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "oneOf": [{"type": "string"}]},
        {"type": "string", "format": "date-time"},
        {"properties": {"a": {"uniqueItems": True}}},
        {"$ref": "https://example.org/elsewhere.json"},
    ],
)
def test_keywords_it_does_not_check_are_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        compile_schema(schema)
