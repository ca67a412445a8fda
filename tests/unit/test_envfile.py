"""Env files read as systemd's EnvironmentFile= reads them (src/basic/env-file.c, systemd 252+).

Each expected value below is what systemd's parser yields for the text, worked out from its
rules (systemd.exec(5) and env-file.c), not from this implementation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trade_executor.config.envfile import (
    EnvFileError,
    parse_env_text,
    read_env_file,
    scan_env_file,
)

# (text, {key: value}) as systemd passes them to the service.
SYSTEMD_READS = [
    pytest.param("A=1 # x\n", {"A": "1 # x"}, id="no inline comments"),
    pytest.param("A=1;2\n", {"A": "1;2"}, id="semicolon inside a value"),
    pytest.param("A = 1\n", {"A": "1"}, id="blanks around ="),
    pytest.param("   A=1   \n", {"A": "1"}, id="blanks around the line"),
    pytest.param("A=one  two\t \n", {"A": "one  two"}, id="inner blanks kept, trailing cut"),
    pytest.param("# c\n; c\n   # indented\n\t; indented\nA=1\n", {"A": "1"}, id="comment lines"),
    pytest.param('A="two  words"  \n', {"A": "two  words"}, id="double quotes keep blanks"),
    pytest.param("A='  x  '\n", {"A": "  x  "}, id="single quotes keep blanks"),
    pytest.param("A='$x ${Y} \\n'\n", {"A": "$x ${Y} \\n"}, id="single quotes: all literal"),
    pytest.param(
        'A="q\\" b\\\\ d\\$ t\\` n\\n"\n', {"A": 'q" b\\ d$ t` n\\n'}, id="double quote escapes"
    ),
    pytest.param("A=${B}\n", {"A": "${B}"}, id="no ${} expansion"),
    pytest.param("A=$B\n", {"A": "$B"}, id="no $ expansion"),
    pytest.param('A="${B}"\n', {"A": "${B}"}, id="no expansion in double quotes"),
    pytest.param("A=x\\\ny\n", {"A": "xy"}, id="continuation"),
    pytest.param("A=x \\\n  y\n", {"A": "x   y"}, id="continuation keeps blanks"),
    pytest.param('A="x\\\ny"\n', {"A": "xy"}, id="continuation in double quotes"),
    pytest.param("A=x\\#y\n", {"A": "x#y"}, id="backslash takes the next char"),
    pytest.param("A=\\ x\n", {"A": " x"}, id="escaped leading blank"),
    pytest.param("A=x\\ \n", {"A": "x "}, id="escaped trailing blank"),
    pytest.param('A="x" y\n', {"A": "xy"}, id="text after a closing quote is appended"),
    pytest.param("A=\"x\"'y'\n", {"A": "xy"}, id="quoted parts are joined"),
    pytest.param('A=a"b"\n', {"A": 'a"b"'}, id="a quote inside a value is text"),
    pytest.param("A=\n", {"A": ""}, id="empty value"),
    pytest.param("A=1\nA=2\n", {"A": "2"}, id="the later assignment wins"),
    pytest.param("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}, id="CRLF line ends"),
    pytest.param("A=1", {"A": "1"}, id="no final newline"),
    pytest.param("A='x\ny'\n", {"A": "x\ny"}, id="a quoted value may span lines"),
    pytest.param("a_b9=1\n", {"a_b9": "1"}, id="lower case and digits in a name"),
]


@pytest.mark.parametrize(("text", "expected"), SYSTEMD_READS)
def test_values_are_read_as_systemd_reads_them(text: str, expected: dict[str, str]) -> None:
    assignments, problems = parse_env_text(text, "f.env")
    assert problems == []
    assert {item.key: item.value for item in assignments} == expected


@pytest.mark.parametrize(("text", "expected"), SYSTEMD_READS)
def test_read_env_file_accepts_what_systemd_reads(
    tmp_path: Path, text: str, expected: dict[str, str]
) -> None:
    path = tmp_path / "f.env"
    path.write_bytes(text.encode())
    assert {key: item.value for key, item in read_env_file(path).items()} == expected


def test_each_value_remembers_its_file_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "te.env"
    path.write_text("# head\n\nA=1\nB=x\\\ny\\\nz\nC='p\nq'\nA=3\n")
    found = read_env_file(path)
    assert (found["B"].line, found["B"].end_line, found["B"].value) == (4, 6, "xyz")
    assert (found["C"].line, found["C"].end_line) == (7, 8)
    assert found["A"].origin == f"{path}:9"  # the later assignment, where it is


# (text, line of the problem, words the message must contain): what systemd drops or reads
# differently across versions, which the reader refuses.
REFUSED = [
    pytest.param("export A=1\n", 1, "export", id="export"),
    pytest.param("B=2\nexport  A=1\n", 2, "not a valid variable name", id="export, line 2"),
    pytest.param("1A=1\n", 1, "not a valid variable name", id="leading digit"),
    pytest.param("A-B=1\n", 1, "not a valid variable name", id="dash in a name"),
    pytest.param("MAX DAILY=1\n", 1, "not a valid variable name", id="blank in a name"),
    pytest.param("\nLOG_LEVEL debug\n", 2, "no '='", id="no equals sign"),
    pytest.param("A=1\nLOG_LEVEL", 2, "no '='", id="no equals sign at the end"),
    pytest.param("# note \\\nA=1\n", 1, "comment ending in a backslash", id="comment backslash"),
    pytest.param('A=1\nB="open\nC=3\n', 2, "never closed", id="unclosed quote"),
    pytest.param("A='open", 1, "never closed", id="unclosed single quote"),
]


@pytest.mark.parametrize(("text", "line", "words"), REFUSED)
def test_what_systemd_would_drop_is_refused_with_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = tmp_path / "f.env"
    path.write_text(text)
    with pytest.raises(EnvFileError) as caught:
        read_env_file(path)
    assert f"{path}:{line}: " in str(caught.value)
    assert words in str(caught.value)
    assert [problem.line for problem in caught.value.problems] == [line]


def test_a_comment_ending_in_an_escaped_backslash_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "f.env"
    path.write_text("# C:\\\\\nA=1\n")  # the comment ends in "\\": no continuation
    assert read_env_file(path)["A"].value == "1"


def test_invalid_utf8_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "f.env"
    path.write_bytes(b"A=1\nB=caf\xe9\n")
    with pytest.raises(EnvFileError, match=r"f\.env:2: invalid UTF-8"):
        read_env_file(path)


def test_a_nul_byte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.env"
    path.write_bytes(b"A=1\nB=2\x00\nC=3\n")
    with pytest.raises(EnvFileError, match=r"f\.env:2: a NUL byte"):
        read_env_file(path)


def test_every_problem_is_listed_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "f.env"
    path.write_text("export A=1\nB=2\nC\n1D=4\n")
    kept, problems = scan_env_file(path)
    assert [problem.line for problem in problems] == [1, 3, 4]
    assert set(kept) == {"B"}


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_env_file(tmp_path / "missing.env")
