"""The command line's help and completion (CONTRACT section 2): every command has a description
and an example, the exit codes are documented, `--env-file` is accepted before and after the
command, and the bash completion script completes what the parser accepts."""

from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest

from trade_executor.cli.completion import bash_script
from trade_executor.cli.main import COMMANDS, build_parser, main
from trade_executor.ops.execute import EXIT_CODES


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_description_and_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    usage, _, rest = out.partition("\n\n")
    assert usage.startswith(f"usage: trade-executor {command}")
    description = rest.split("\n\n")[0].strip()
    assert description and not description.startswith(("positional", "options")), out
    assert "example" in out
    # Each example is a runnable command line of this very command.
    examples = out[out.index("example") :].splitlines()[1:]
    assert any(line.strip().startswith("trade-executor") and command in line for line in examples)


def test_the_top_level_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    codes = out[out.index("exit codes:") :]
    for code in ("0", "1", "2", "78"):
        assert f"\n  {code} " in codes, code


def test_execute_help_names_a_distinct_exit_code_for_each_refusal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    refusals = {status: EXIT_CODES[status] for status in (401, 404, 409, 422)}
    assert len(set(refusals.values())) == 4
    assert not set(refusals.values()) & {0, 1, 2, 78}
    with pytest.raises(SystemExit):
        main(["execute", "--help"])
    out = capsys.readouterr().out
    for status, code in refusals.items():
        assert f"  {code}  {status}" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--env-file", "/etc/x.env", "status"],
        ["status", "--env-file", "/etc/x.env"],
        ["halt", "--reason", "r", "--env-file", "/etc/x.env"],
    ],
)
def test_env_file_is_accepted_before_and_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.env_file == "/etc/x.env"


def test_env_file_after_the_command_does_not_erase_one_before_it() -> None:
    args = build_parser().parse_args(["--env-file", "/etc/x.env", "status", "--json"])
    assert args.env_file == "/etc/x.env" and args.json


def test_ids_that_are_no_ids_are_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["show", "not-an-id"], ["show", "3f2"], ["resolve", "xyz", "--as", "failed"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2, argv
        assert "usage:" in capsys.readouterr().err


def test_the_completion_script_names_every_command_and_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete -o default -F _trade_executor trade-executor" in script
    for name, sub in subcommands(build_parser()).items():
        assert f"        {name}) opts=" in script
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in script, (name, flag)
    assert "--profile" in script  # paper-bridge's own parser is included


BASH = shutil.which("bash")


def complete(script: str, words: list[str]) -> list[str]:
    """What bash offers after `words` (the last one being completed), through the script."""
    assert BASH is not None
    line = " ".join(repr(w) if w else "''" for w in words)
    program = (
        f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        '_trade_executor; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run([BASH, "--norc", "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [word for word in done.stdout.splitlines() if word]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_choices() -> None:
    script = bash_script(build_parser())
    assert BASH is not None
    syntax = subprocess.run([BASH, "-n"], input=script, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    assert set(complete(script, ["trade-executor", "sh"])) == {"show"}
    assert "--wait" in complete(script, ["trade-executor", "halt", "--w"])
    [outcome] = [a for a in subcommands(build_parser())["resolve"]._actions if a.dest == "outcome"]
    assert outcome.choices
    assert set(complete(script, ["trade-executor", "resolve", "ab12", "--as", ""])) == set(
        outcome.choices
    )
    assert set(complete(script, ["trade-executor", "--env-file", "x.env", "st"])) == {"status"}
