"""Every output mode against golden text, plus headers, NULL text and cutting wide values."""

from __future__ import annotations

import pytest
from shell_harness import Harness, MakeHarness

from paxdb_shell.render import ELLIPSIS, RenderOptions, display_width, fit_widths, render

GOLDEN = {
    "table": """\
+----+---------------------+-------+
| id | name                | score |
+----+---------------------+-------+
|  1 | Ann                 |   9.5 |
|  2 | NULL                |  NULL |
|  3 | Zoë "Z" O'Neil, Jr. | -1.25 |
+----+---------------------+-------+
""",
    "box": """\
┌────┬─────────────────────┬───────┐
│ id │ name                │ score │
├────┼─────────────────────┼───────┤
│  1 │ Ann                 │   9.5 │
│  2 │ NULL                │  NULL │
│  3 │ Zoë "Z" O'Neil, Jr. │ -1.25 │
└────┴─────────────────────┴───────┘
""",
    "column": """\
id  name                 score
--  -------------------  -----
 1  Ann                    9.5
 2  NULL                  NULL
 3  Zoë "Z" O'Neil, Jr.  -1.25
""",
    "list": """\
id|name|score
1|Ann|9.5
2||
3|Zoë "Z" O'Neil, Jr.|-1.25
""",
    "csv": """\
id,name,score
1,Ann,9.5
2,,
3,"Zoë ""Z"" O'Neil, Jr.",-1.25
""",
    "json": """\
[{"id":1,"name":"Ann","score":9.5},
{"id":2,"name":null,"score":null},
{"id":3,"name":"Zoë \\"Z\\" O'Neil, Jr.","score":-1.25}]
""",
    "line": """\
   id = 1
 name = Ann
score = 9.5

   id = 2
 name = NULL
score = NULL

   id = 3
 name = Zoë "Z" O'Neil, Jr.
score = -1.25
""",
    "markdown": """\
| id | name                | score |
|---:|---------------------|------:|
|  1 | Ann                 |   9.5 |
|  2 | NULL                |  NULL |
|  3 | Zoë "Z" O'Neil, Jr. | -1.25 |
""",
}


@pytest.mark.parametrize("mode", sorted(GOLDEN))
def test_every_mode_matches_its_golden_output(people: Harness, mode: str) -> None:
    output = people.run(f".headers on\n.mode {mode}\nSELECT * FROM people ORDER BY id;\n")
    assert output == GOLDEN[mode]
    assert people.errors() == []


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("list", "1|Ann|9.5\n2||\n"),
        ("csv", "1,Ann,9.5\n2,,\n"),
        ("column", "1  Ann    9.5\n2  NULL  NULL\n"),
        (
            "table",
            "+---+------+------+\n| 1 | Ann  |  9.5 |\n| 2 | NULL | NULL |\n+---+------+------+\n",
        ),
    ],
)
def test_headers_off(people: Harness, mode: str, expected: str) -> None:
    output = people.run(f".headers off\n.mode {mode}\nSELECT * FROM people WHERE id < 3;\n")
    assert output == expected


def test_non_interactive_default_is_list_without_headers(people: Harness) -> None:
    assert people.run("SELECT id, name FROM people WHERE id = 1;") == "1|Ann\n"


def test_interactive_default_is_table_with_headers(make_harness: MakeHarness) -> None:
    harness = make_harness(interactive=True)
    output = harness.run("SELECT 1 AS one;")
    assert output == "+-----+\n| one |\n+-----+\n|   1 |\n+-----+\n(1 row)\n"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("list", "1|~\n"), ("csv", "1,~\n"), ("table", "+---+---+\n| 1 | ~ |\n+---+---+\n")],
)
def test_nullvalue_replaces_null_text(harness: Harness, mode: str, expected: str) -> None:
    output = harness.run(f".nullvalue ~\n.headers off\n.mode {mode}\nSELECT 1, NULL;\n")
    assert output == expected


def test_nullvalue_without_argument_restores_mode_default(harness: Harness) -> None:
    assert harness.run(".nullvalue ~\n.nullvalue\n.mode line\nSELECT NULL AS x;") == "x = NULL\n"


def test_json_null_is_always_null(harness: Harness) -> None:
    assert harness.run(".nullvalue ~\n.mode json\nSELECT NULL AS x;") == '[{"x":null}]\n'


def test_json_of_an_empty_result_is_an_empty_array(people: Harness) -> None:
    assert people.run(".mode json\nSELECT * FROM people WHERE 0;") == "[]\n"
    assert people.run(".mode table\nSELECT * FROM people WHERE 0;") == ""


def test_blobs_and_floats_render_as_sql_would_read_them(harness: Harness) -> None:
    output = harness.run(".mode list\nSELECT X'00ff', 2.0, 1e300, 7;")
    assert output == "X'00FF'|2.0|1e+300|7\n"


def test_wide_values_are_cut_to_the_width_with_an_ellipsis(make_harness: MakeHarness) -> None:
    harness = make_harness(width=30)
    harness.run("CREATE TABLE t(k INTEGER, v TEXT); INSERT INTO t VALUES (1, '" + "x" * 100 + "');")
    output = harness.run(".mode table\n.headers on\nSELECT * FROM t;")
    lines = output.splitlines()
    assert all(display_width(line) <= 30 for line in lines)
    assert lines[3] == "| 1 | " + "x" * 21 + ELLIPSIS + " |"
    assert display_width(lines[3]) == 30


def test_pipes_are_never_cut(harness: Harness) -> None:
    long_text = "y" * 500
    assert harness.run(f".mode table\nSELECT '{long_text}';").count(long_text) == 1


def test_control_characters_are_escaped_in_grid_modes_only(harness: Harness) -> None:
    assert harness.run(".mode column\nSELECT 'a' || char(10) || 'b';") == "a\\nb\n"
    assert harness.run(".mode list\nSELECT 'a' || char(10) || 'b';") == "a\nb\n"


def test_wide_characters_keep_columns_aligned() -> None:
    options = RenderOptions(mode="table", headers=True)
    lines = list(render(["名前", "n"], [("東京", 1), ("x", 22)], options))
    assert len({display_width(line) for line in lines}) == 1


def test_fit_widths_cuts_the_widest_first_and_never_below_the_minimum() -> None:
    assert fit_widths([3, 50, 10], None) == [3, 50, 10]
    assert fit_widths([3, 50, 10], 63) == [3, 50, 10]
    assert fit_widths([3, 50, 10], 30) == [3, 17, 10]
    assert sum(fit_widths([40, 50, 60], 90)) == 90
    assert fit_widths([40, 50], 4) == [5, 5]


def test_render_yields_nothing_for_a_statement_without_columns() -> None:
    assert list(render([], [], RenderOptions(mode="json"))) == []
