"""`trade-executor --env-file F check-config` decides as systemd's EnvironmentFile= would
(CONTRACT v2 sections 2 and 3, issue 15): what systemd passes on is what the CLI uses, what it
would drop or mis-read is refused with exit 78 naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trade_executor.cli.main import main
from trade_executor.config.sources import (
    CREDENTIALS_DIRECTORY_VARIABLE,
    ENV_FILE_VARIABLE,
    EX_CONFIG,
)

DSN = "postgresql://trader@db.internal:5432/trading"


pytestmark = pytest.mark.usefixtures("clean_environment")


def check(
    tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, str], str, Path]:
    """check-config on a file holding DATABASE_URL (line 1) and then `body` (line 2 on)."""
    path = tmp_path / "trade-executor.env"
    path.write_text(f"DATABASE_URL={DSN}\n{body}")
    code = main(["--env-file", str(path), "check-config"])
    captured = capsys.readouterr()
    printed = dict(line.split("=", 1) for line in captured.out.splitlines())
    return code, printed, captured.err, path


# (line 2 of the file, setting, the value systemd hands the service)
ACCEPTED = [
    pytest.param(
        "HTTP_HOST=localhost # the API\n", "HTTP_HOST", "localhost # the API", id="inline"
    ),
    pytest.param("HTTP_HOST=${HOST}\n", "HTTP_HOST", "${HOST}", id="no ${} expansion"),
    pytest.param("HTTP_HOST=$HOST\n", "HTTP_HOST", "$HOST", id="no $ expansion"),
    pytest.param('LOG_LEVEL="debug"\n', "LOG_LEVEL", "debug", id="double quotes"),
    pytest.param("LOG_LEVEL='warning'\n", "LOG_LEVEL", "warning", id="single quotes"),
    pytest.param("HTTP_HOST='  a b  '\n", "HTTP_HOST", "  a b  ", id="quotes keep blanks"),
    pytest.param('HTTP_HOST="a"b\n', "HTTP_HOST", "ab", id="quoted then unquoted"),
    pytest.param("MAX_DAILY_LOSS=12\\\n34\n", "MAX_DAILY_LOSS", "1234", id="continuation"),
    pytest.param("MAX_OPEN_POSITIONS = 7  \n", "MAX_OPEN_POSITIONS", "7", id="blanks around ="),
    pytest.param(
        "# MAX_OPEN_POSITIONS=1\n; MAX_OPEN_POSITIONS=2\n   # indented\n\n",
        "MAX_OPEN_POSITIONS",
        "5",
        id="comment lines",
    ),
    pytest.param(
        "MAX_OPEN_POSITIONS=1\nMAX_OPEN_POSITIONS=2\n", "MAX_OPEN_POSITIONS", "2", id="later wins"
    ),
    pytest.param("log_level=error\n", "LOG_LEVEL", "error", id="lower-case name"),
    pytest.param("MAX_DAILY_LOSS=0\n", "MAX_DAILY_LOSS", "0", id="0 = off"),
]


@pytest.mark.parametrize(("body", "setting", "value"), ACCEPTED)
def test_the_value_is_the_one_systemd_passes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, setting: str, value: str
) -> None:
    code, printed, err, _ = check(tmp_path, body, capsys)
    assert code == 0, err
    assert printed[setting] == value


# (line 2 on, the line named, words the message must hold)
REFUSED = [
    pytest.param("MAX_DAILY_LOS=5\n", 2, "unknown setting MAX_DAILY_LOS", id="unknown key"),
    pytest.param(
        "MAX_DAILY_LOSS=500 # usd\n", 2, "MAX_DAILY_LOSS='500 # usd'", id="inline comment"
    ),
    pytest.param("export LOG_LEVEL=debug\n", 2, "'export LOG_LEVEL'", id="export"),
    pytest.param("HTTP_PORT=${PORT}\n", 2, "HTTP_PORT='${PORT}'", id="${} kept literally"),
    pytest.param("LOG_FORMAT console\n", 2, "no '='", id="no equals sign"),
    pytest.param("# old \\\nLOG_LEVEL=debug\n", 2, "backslash", id="comment continued"),
    pytest.param("\nLOG_LEVEL='debug\n", 3, "never closed", id="quote left open"),
    pytest.param("MAX-DAILY-LOSS=5\n", 2, "not a valid variable name", id="invalid name"),
]


@pytest.mark.parametrize(("body", "line", "words"), REFUSED)
def test_what_systemd_drops_or_misreads_exits_78_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, line: int, words: str
) -> None:
    code, printed, err, path = check(tmp_path, body, capsys)
    assert code == EX_CONFIG
    assert printed == {}
    assert f"{path}:{line}" in err
    assert words in err


def test_unknown_key_suggests_the_closest_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, err, _ = check(tmp_path, "MAX_DAILY_LOS=5\n", capsys)
    assert "did you mean MAX_DAILY_LOSS?" in err


def test_env_file_named_by_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "te.env"
    path.write_text(f"DATABASE_URL={DSN}\nMAX_DAILY_LOS=5\n")
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(path))
    assert main(["check-config"]) == EX_CONFIG
    assert f"{path}:2: unknown setting MAX_DAILY_LOS" in capsys.readouterr().err


def test_check_config_needs_what_run_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "te.env"
    path.write_text("LOG_LEVEL=info\n")
    assert main(["--env-file", str(path), "check-config"]) == EX_CONFIG
    assert "DATABASE_URL: required by run but is not set" in capsys.readouterr().err
    assert main(["--env-file", str(path), "run"]) == EX_CONFIG
    assert "DATABASE_URL: required by run" in capsys.readouterr().err


def test_empty_api_token_is_shown_unset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, printed, _, _ = check(tmp_path, "API_TOKEN=\n", capsys)
    assert code == 0 and printed["API_TOKEN"] == "(unset)"


def test_limits_turned_off_are_named_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, printed, err, _ = check(tmp_path, "MAX_OPEN_POSITIONS=0\nMAX_DAILY_LOSS=0\n", capsys)
    assert code == 0
    assert "warning: limits off (set to 0): MAX_OPEN_POSITIONS, MAX_DAILY_LOSS" in err
    assert printed["MAX_OPEN_POSITIONS"] == "0"


def test_api_token_from_a_systemd_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "credentials"
    directory.mkdir()
    (directory / "api_token").write_text("t0ken-from-credential\n")
    monkeypatch.setenv(CREDENTIALS_DIRECTORY_VARIABLE, str(directory))
    code, printed, err, _ = check(tmp_path, "", capsys)
    assert code == 0 and printed["API_TOKEN"] == "***"
    assert "t0ken-from-credential" not in err
