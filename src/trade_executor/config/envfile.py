"""Env files read the way systemd's `EnvironmentFile=` reads them (CONTRACT section 3).

The unit file hands the service its settings through `EnvironmentFile=`, and operators check the
same file with `trade-executor --env-file FILE check-config`. Both must read it alike, so this
module follows systemd's own parser (`parse_env_file_internal` in src/basic/env-file.c, the same
in systemd 252, Debian 12's, and later) character by character:

- `KEY=VALUE` lines; whitespace around the key, around `=` and at the ends of an unquoted value is
  dropped; a line whose first non-blank character is `#` or `;` is a comment.
- No inline comments: `A=1 # x` is the value `1 # x`. No `export`: `export A=1` sets a variable
  named `export A`, which systemd then drops as an invalid name. No `${}` expansion: `$` is text.
- A value may start with `'...'` (everything literal, newlines included) or `"..."` (a backslash
  escapes only `"`, `\\`, `` ` `` and `$`, keeps itself before anything else, and with a newline
  continues the line). A quoted part may be followed by more quoted or unquoted text, which is
  appended (`A="x" y` is `xy`); a quote inside an unquoted value is an ordinary character.
- Outside quotes a backslash takes the next character literally, and a backslash at the end of a
  line joins the next line to the value. `\\r` ends a line like `\\n` (so CRLF files read right).
- A later assignment of the same key replaces the earlier one.

Where systemd would drop something silently, or with only a warning in the journal, or where its
versions disagree, `read_env_file` refuses instead (`EnvFileError`, naming file and line), because
a setting that silently vanishes falls back to its default:
- a line with no `=` (systemd drops it silently),
- an invalid variable name, such as `export A` (systemd drops it with a warning),
- invalid UTF-8 or a NUL byte,
- a comment line ending in a backslash (systemd before 254 also ignores the line after it;
  254 and later read that line),
- a quote still open at the end of the file (systemd takes the rest of the file as the value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto
from pathlib import Path

_WHITESPACE = " \t\n\r"
_NEWLINE = "\n\r"
_COMMENT_START = "#;"
# Characters a backslash escapes inside double quotes (systemd's SHELL_NEED_ESCAPE).
_DOUBLE_QUOTE_ESCAPABLE = '"\\`$'
# What systemd accepts as a variable name (env_name_is_valid): letters, digits, "_", no
# leading digit.
_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class Assignment:
    """One `KEY=VALUE` as systemd reads it, and where it was written."""

    key: str
    value: str
    path: str
    line: int  # the line the assignment starts on (1-based)
    end_line: int  # the line it ends on: later than `line` after a continuation or a quote

    @property
    def origin(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in an env file that systemd would drop or read differently across versions."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class EnvFileError(Exception):
    """The env file cannot be used as it is; `problems` lists each place (file:line) and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


class _State(Enum):
    PRE_KEY = auto()
    KEY = auto()
    PRE_VALUE = auto()
    VALUE = auto()
    VALUE_ESCAPE = auto()
    SINGLE_QUOTE = auto()
    DOUBLE_QUOTE = auto()
    DOUBLE_QUOTE_ESCAPE = auto()
    COMMENT = auto()
    COMMENT_ESCAPE = auto()


_VALUE_STATES = frozenset(
    {
        _State.PRE_VALUE,
        _State.VALUE,
        _State.VALUE_ESCAPE,
        _State.SINGLE_QUOTE,
        _State.DOUBLE_QUOTE,
        _State.DOUBLE_QUOTE_ESCAPE,
    }
)


class _Parser:
    """systemd's state machine over the whole text; collects assignments and problems."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.assignments: list[Assignment] = []
        self.problems: list[Problem] = []
        self.line = 1  # physical line of the character being read (counts "\n" only)
        self.key: list[str] = []
        self.key_trailing_blank: int | None = None  # where trailing blanks of the key start
        self.value: list[str] = []
        self.value_trailing_blank: int | None = None  # same, for an unquoted value
        self.start_line = 1
        self.quote_line = 1

    def _push(self, *, chomp_value: bool) -> None:
        key = (
            self.key[: self.key_trailing_blank] if self.key_trailing_blank is not None else self.key
        )
        value = self.value
        if chomp_value and self.value_trailing_blank is not None:
            value = value[: self.value_trailing_blank]
        self.assignments.append(
            Assignment("".join(key), "".join(value), self.path, self.start_line, self.line)
        )
        self.key, self.value = [], []

    def _problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def _append_value(self, char: str) -> None:
        self.value.append(char)

    def feed(self, text: str) -> None:  # one state machine, as in systemd
        state = _State.PRE_KEY
        for char in text:
            if state is _State.PRE_KEY:
                if char in _COMMENT_START:
                    state = _State.COMMENT
                elif char not in _WHITESPACE:
                    state = _State.KEY
                    self.start_line = self.line
                    self.key, self.key_trailing_blank = [char], None
            elif state is _State.KEY:
                if char in _NEWLINE:
                    self._problem(
                        self.start_line,
                        f"{''.join(self.key).strip()!r} is not an assignment (no '='); "
                        "systemd ignores such a line silently",
                    )
                    state, self.key = _State.PRE_KEY, []
                elif char == "=":
                    state = _State.PRE_VALUE
                    self.value, self.value_trailing_blank = [], None
                else:
                    if char not in _WHITESPACE:
                        self.key_trailing_blank = None
                    elif self.key_trailing_blank is None:
                        self.key_trailing_blank = len(self.key)
                    self.key.append(char)
            elif state is _State.PRE_VALUE:
                if char in _NEWLINE:
                    self._push(chomp_value=False)
                    state = _State.PRE_KEY
                elif char == "'":
                    state, self.quote_line = _State.SINGLE_QUOTE, self.line
                elif char == '"':
                    state, self.quote_line = _State.DOUBLE_QUOTE, self.line
                elif char == "\\":
                    state = _State.VALUE_ESCAPE
                elif char not in _WHITESPACE:
                    state = _State.VALUE
                    self._append_value(char)
            elif state is _State.VALUE:
                if char in _NEWLINE:
                    self._push(chomp_value=True)
                    state = _State.PRE_KEY
                elif char == "\\":
                    state = _State.VALUE_ESCAPE
                    self.value_trailing_blank = None
                else:
                    if char not in _WHITESPACE:
                        self.value_trailing_blank = None
                    elif self.value_trailing_blank is None:
                        self.value_trailing_blank = len(self.value)
                    self._append_value(char)
            elif state is _State.VALUE_ESCAPE:
                state = _State.VALUE
                if char not in _NEWLINE:  # an escaped newline joins the next line
                    self._append_value(char)
            elif state is _State.SINGLE_QUOTE:
                if char == "'":
                    state = _State.PRE_VALUE
                else:
                    self._append_value(char)
            elif state is _State.DOUBLE_QUOTE:
                if char == '"':
                    state = _State.PRE_VALUE
                elif char == "\\":
                    state = _State.DOUBLE_QUOTE_ESCAPE
                else:
                    self._append_value(char)
            elif state is _State.DOUBLE_QUOTE_ESCAPE:
                state = _State.DOUBLE_QUOTE
                if char in _DOUBLE_QUOTE_ESCAPABLE:
                    self._append_value(char)
                elif char != "\n":  # like the shell, the backslash stays before other chars
                    self.value.extend(("\\", char))
            elif state is _State.COMMENT:
                if char == "\\":
                    state = _State.COMMENT_ESCAPE
                elif char in _NEWLINE:
                    state = _State.PRE_KEY
            else:  # COMMENT_ESCAPE
                if char in _NEWLINE:
                    self._problem(
                        self.line,
                        "a comment ending in a backslash: systemd before 254 ignores the next "
                        "line too, later versions read it; remove the backslash",
                    )
                    state = _State.PRE_KEY
                else:
                    state = _State.COMMENT
            if char == "\n":
                self.line += 1

        if state in _VALUE_STATES:
            if state in (_State.SINGLE_QUOTE, _State.DOUBLE_QUOTE, _State.DOUBLE_QUOTE_ESCAPE):
                self._problem(
                    self.quote_line,
                    "a quote opened here is never closed; systemd would take the rest of the "
                    "file as the value",
                )
            self._push(chomp_value=state is _State.VALUE)
        elif state is _State.KEY:
            self._problem(
                self.start_line,
                f"{''.join(self.key).strip()!r} is not an assignment (no '='); "
                "systemd ignores such a line silently",
            )


def parse_env_text(text: str, path: str = "<env>") -> tuple[list[Assignment], list[Problem]]:
    """Every assignment systemd's parser yields from `text`, in order (duplicates and invalid
    names included, as systemd's parser passes them on), and the problems of the text itself
    (lines it drops silently, comments its versions read differently, an unclosed quote)."""
    parser = _Parser(path)
    parser.feed(text)
    return parser.assignments, parser.problems


def _has_surrogate(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def _shown(text: str) -> str:
    """`text` for a message, with undecodable bytes shown as \\x escapes."""
    return repr(text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def check_assignments(assignments: list[Assignment]) -> tuple[dict[str, Assignment], list[Problem]]:
    """What systemd would pass to the service (later assignments win), and the assignments it
    would drop: invalid names (`export A`, `1A`, `A-B`) and invalid UTF-8."""
    kept: dict[str, Assignment] = {}
    problems: list[Problem] = []
    for item in assignments:
        if _has_surrogate(item.key) or _has_surrogate(item.value):
            problems.append(
                Problem(
                    item.path,
                    item.line,
                    f"invalid UTF-8 in the assignment of {_shown(item.key)}; systemd ignores it",
                )
            )
        elif not _VALID_NAME.match(item.key):
            hint = ""
            first, _, rest = item.key.partition(" ")
            if first == "export" and _VALID_NAME.match(rest.strip()):
                hint = f" (write {rest.strip()}=... without 'export': this is not a shell script)"
            problems.append(
                Problem(
                    item.path,
                    item.line,
                    f"{item.key!r} is not a valid variable name; systemd ignores this assignment "
                    f"with a warning{hint}",
                )
            )
        else:
            kept[item.key] = item
    return kept, problems


def scan_env_file(path: str | Path) -> tuple[dict[str, Assignment], list[Problem]]:
    """The variables systemd's `EnvironmentFile=` would set from `path` (each with its file and
    line), and the problems `read_env_file` refuses, sorted by line; raises `OSError` if the
    file cannot be read."""
    name = str(path)
    data = Path(path).read_bytes()
    problems: list[Problem] = []
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        problems.append(Problem(name, line, "a NUL byte: systemd stops reading the file here"))
        data = data[: data.index(b"\0")]
    # Undecodable bytes survive as surrogates, so the assignment holding them can be named.
    assignments, text_problems = parse_env_text(data.decode("utf-8", "surrogateescape"), name)
    kept, name_problems = check_assignments(assignments)
    problems.extend(text_problems)
    problems.extend(name_problems)
    problems.sort(key=lambda problem: problem.line)
    return kept, problems


def read_env_file(path: str | Path) -> dict[str, Assignment]:
    """The variables systemd's `EnvironmentFile=` would set from `path`, each with its file and
    line; raises `EnvFileError` (every problem, each with file:line) wherever systemd would drop
    a line or read it differently across versions, and `OSError` if the file cannot be read."""
    kept, problems = scan_env_file(path)
    if problems:
        raise EnvFileError(problems)
    return kept
