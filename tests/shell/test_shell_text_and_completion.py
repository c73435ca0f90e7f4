"""SQL text helpers and completion suggestions (pure functions)."""

from __future__ import annotations

import pytest

from paxdb_shell.completion import suggest
from paxdb_shell.sqltext import first_keyword, is_blank, is_input_complete, split_statements

SCHEMA = {"people": ["id", "name", "score"], "pets": ["owner", "species"], "my table": ["x y"]}


@pytest.mark.parametrize(
    ("text", "statements"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1;", " SELECT 2;"]),
        ("SELECT ';'; SELECT 2", ["SELECT ';';", " SELECT 2"]),
        ("-- only a comment\n;;", []),
        ("/* a; b */ SELECT 1;", ["/* a; b */ SELECT 1;"]),
        (
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END; SELECT 3;",
            ["CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;", " SELECT 3;"],
        ),
    ],
)
def test_split_statements(text: str, statements: list[str]) -> None:
    assert list(split_statements(text)) == statements


def test_blank_and_first_keyword() -> None:
    assert is_blank("  -- x\n /* y */ ; ")
    assert not is_blank("-- x\nSELECT 1")
    assert first_keyword("/* c */ create table t(x)") == "CREATE"
    assert first_keyword("") == ""


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("", True),
        (".mode csv", True),
        ("SELECT 1", False),
        ("SELECT 1;", True),
        ("SELECT ';", False),
    ],
)
def test_is_input_complete(text: str, complete: bool) -> None:
    assert is_input_complete(text) is complete


def _texts(text: str, **options: bool) -> list[str]:
    return [s.text for s in suggest(text, SCHEMA, ["mode", "tables", "timer"], **options)]


def test_tables_after_from() -> None:
    assert _texts("SELECT * FROM pe")[:2] == ["people", "pets"]
    assert _texts("SELECT * FROM ")[:3] == ['"my table"', "people", "pets"]


def test_names_that_need_quotes_are_quoted() -> None:
    assert '"my table"' in _texts("SELECT * FROM m")


def test_columns_of_a_qualified_table() -> None:
    items = suggest("SELECT people.n", SCHEMA)
    assert [(s.text, s.replace_chars) for s in items] == [("name", 1)]


def test_columns_of_mentioned_tables_come_first_then_keywords_in_the_typed_case() -> None:
    assert _texts("SELECT s FROM pets WHERE s")[:1] == ["species"]
    assert "select" in _texts("sel")
    assert "SELECT" in _texts("SEL")


def test_nothing_pops_up_after_a_space_unless_asked() -> None:
    assert _texts("SELECT ") == []
    assert len(_texts("SELECT ", requested=True)) > 100


def test_dot_commands_and_their_arguments() -> None:
    assert _texts(".ti") == [".timer"]
    assert _texts(".mode c") == ["column", "csv"]
    assert _texts(".tables p") == ["people", "pets"]
