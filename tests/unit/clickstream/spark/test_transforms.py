"""The field list the JVM parser reads is the schema module's, written out."""

from __future__ import annotations

from clickstream import schema
from clickstream.spark.parse import parse_spec


def test_the_parser_reads_the_schema_modules_fields_and_versions():
    assert parse_spec() == (
        "versions=1;depth=32;event_id:string:required;schema_version:int:required;user_id:string:required;"
        "session_id:string:required;page:string:required;referrer:string|null:optional;"
        "user_agent:string:required;ts:int|string:required;properties:object|null:optional"
    )


def test_a_new_field_or_version_reaches_the_parser(monkeypatch):
    extra = schema.FieldSpec("campaign", (str, type(None)), False, "string", "marketing campaign")
    monkeypatch.setattr("clickstream.spark.parse.FIELDS", (*schema.FIELDS, extra))
    monkeypatch.setattr("clickstream.spark.parse.SUPPORTED_VERSIONS", frozenset({1, 2}))
    spec = parse_spec()
    assert spec.startswith("versions=1,2;depth=32;") and spec.endswith(";campaign:string|null:optional")
