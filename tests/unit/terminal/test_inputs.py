"""A run's input from a file or stdin: a JSON object within the WorkflowRun's input caps, or a
UsageError (exit 2) that names the source and, for text that is not JSON, the line and column."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from stepline.terminal.errors import UsageError
from stepline.terminal.inputs import parse_run_input, read_input_text


def test_no_file_is_the_empty_object() -> None:
    source, text = read_input_text(None, stdin=io.StringIO("ignored"))
    assert parse_run_input(text, source=source) == {}


def test_a_dash_reads_stdin_and_a_path_reads_the_file(tmp_path: Path) -> None:
    assert read_input_text("-", stdin=io.StringIO('{"a": 1}')) == ("stdin", '{"a": 1}')
    path = tmp_path / "input.json"
    path.write_text('{"b": [2]}', encoding="utf-8")
    source, text = read_input_text(str(path), stdin=io.StringIO())
    assert parse_run_input(text, source=source) == {"b": [2]}


def test_text_that_is_not_json_is_refused_naming_the_file_line_and_column() -> None:
    with pytest.raises(UsageError) as refused:
        parse_run_input('{\n  "order": "o-1",\n}\n', source="order.json")
    assert str(refused.value) == (
        "order.json is not JSON: Expecting property name enclosed in double quotes at line 3, "
        "column 1"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [("[1, 2]", "stdin holds a JSON array; a run's input is a JSON object"),
     ('"o-1"', "stdin holds a JSON string"), ("null", "stdin holds a JSON null"),
     ("NaN", "stdin is not JSON: NaN is not a JSON number"),
     ('{"a": Infinity}', "stdin is not JSON: Infinity is not a JSON number"),
     ("[" * 100_000, "stdin nests arrays and objects too deep"),
     ("{" + ",".join(f'"k{i}": 1' for i in range(65)) + "}",
      "stdin: input has 65 keys; at most 64 are allowed"),
     ('{"a": "' + "x" * 70_000 + '"}', "stdin: input is 70008 bytes of JSON; at most 65536")],
)  # fmt: skip
def test_json_that_cannot_be_a_run_input_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_run_input(text, source="stdin")
    assert says in str(refused.value)


def test_a_file_that_cannot_be_read_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read the input file .*missing\.json"):
        read_input_text(str(tmp_path / "missing.json"), stdin=io.StringIO())
