"""The docs say what the code does (review finding "docs drift"): docs/SETTINGS.md lists every
setting with its real default, the README's HTTP API list is the app's routes (read from the app,
so a new route fails here until the README names it), every `/api/...` path the README names is
served, and no shipped doc cites CONTRACT sections the install does not ship."""

from __future__ import annotations

import argparse
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.routing import Mount, Route

from trade_executor.api.app import create_app
from trade_executor.config.sources import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SETTINGS_MD = ROOT / "docs" / "SETTINGS.md"
SHIPPED_DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
# How the table shows a setting that has no value by default.
UNSET_SHOWN = {"unset", "(unset)", "(required by `run`)"}


def documented_settings() -> dict[str, str]:
    """VARIABLE -> the default cell, from each table row `| `A` / `B` | `x` / `y` | ...`."""
    found: dict[str, str] = {}
    for names, defaults in re.findall(
        r"^\| (`[A-Z][^|]*?) \| ([^|]*?) \|", SETTINGS_MD.read_text(), re.M
    ):
        variables = re.findall(r"`([A-Z][A-Z0-9_]*)`", names)
        values = [v.strip() for v in defaults.split(" / ")] if len(variables) > 1 else [defaults]
        assert len(values) == len(variables), names
        found.update(zip(variables, (v.strip() for v in values), strict=True))
    return found


def same_default(shown: str, actual: str) -> bool:
    shown = shown.strip("`")
    if actual == "(unset)":
        return shown in UNSET_SHOWN
    try:
        return Decimal(shown) == Decimal(actual)
    except InvalidOperation:
        return shown == actual


@pytest.mark.usefixtures("clean_environment")  # not the suite's own (tests/conftest.py)
def test_settings_md_lists_every_setting_with_its_default() -> None:
    documented = documented_settings()
    actual = Settings().redacted()
    assert sorted(set(actual) - set(documented)) == [], "settings missing from docs/SETTINGS.md"
    assert sorted(set(documented) - set(actual)) == [], "docs/SETTINGS.md names no such setting"
    wrong = {
        name: (documented[name], actual[name])
        for name in actual
        if not same_default(documented[name], actual[name])
    }
    assert wrong == {}, "docs/SETTINGS.md default differs from the code (shown, actual)"


def app_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every route the service's app serves, HEAD aside."""
    app = create_app(Settings(), cast(Any, object()))  # routes only: the gateway is not called
    served: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Route):
            served |= {(m, route.path) for m in (route.methods or ()) if m != "HEAD"}
        elif isinstance(route, Mount):
            served.add(("GET", route.path + "/..."))
    return served


def readme_http_api() -> set[tuple[str, str]]:
    text = README.read_text()
    section = text[text.index("\n## HTTP API\n") :]
    section = section[: section.index("\n## ", 1)]
    return set(re.findall(r"^- `(GET|POST|PUT|DELETE|PATCH) (/[^`\s]*)`", section, re.M))


def test_readme_http_api_lists_exactly_the_apps_routes() -> None:
    """The console's pages are its own section's matter: the list names `GET /console` for them.
    Any other route of the app (a new /api/v1/... included) must be listed, and each listed one
    must exist."""
    served = {r for r in app_routes() if not r[1].startswith("/console")}
    listed = readme_http_api()
    assert ("GET", "/console") in listed and ("GET", "/console") in app_routes()
    listed.discard(("GET", "/console"))
    assert sorted(served - listed) == [], "routes the README's HTTP API list does not name"
    assert sorted(listed - served) == [], "the README's HTTP API list names routes not served"


def test_every_api_path_the_readme_names_is_served() -> None:
    """The diagram named `/api/v1/executions`, which answers 404."""
    paths = {path for _, path in app_routes()}
    named = set(re.findall(r"(/api/v\d+/[A-Za-z0-9_/{}-]*[A-Za-z0-9_}])", README.read_text()))
    assert named, "the README names no /api path at all?"
    assert sorted(named - paths) == []


def test_the_docs_cite_only_the_contract_they_ship() -> None:
    """The contract ships in docs/CONTRACT.md: a doc that cites it cites a section that is there
    (before it shipped, a reader of docs/ could not look a citation up)."""
    contract = ROOT / "docs" / "CONTRACT.md"
    sections = set(re.findall(r"^## (\d+)\. ", contract.read_text(), flags=re.M))
    assert sections, "docs/CONTRACT.md has no numbered sections?"
    cited = [
        (f"{doc.relative_to(ROOT)}:{number}", section)
        for doc in SHIPPED_DOCS
        if doc != contract
        for number, line in enumerate(doc.read_text().splitlines(), 1)
        for section in re.findall(r"CONTRACT,?\s+sections?\s+(\d+)", line)
    ]
    assert [where for where, section in cited if section not in sections] == []


RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
# The RUNBOOK's placeholders, as a person would fill them in.
PLACEHOLDERS = {"<id>": "3f2a", "ID": "3f2a", "EXECUTION_ID": "3f2a", "<N>": "42", "SYMBOL": "AAPL"}


def runbook_commands() -> list[str]:
    """Every operator command line the RUNBOOK gives: `te ...` lines of its code blocks (and
    the `or: te ...` of their comments), inline `te ...` and `trade-executor ...` commands,
    and the synopses `protect SYMBOL [--stop P] ...` with every option given."""
    text = RUNBOOK.read_text()
    found: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block and line.startswith("te "):
            command, _, comment = line.partition("#")
            found.append(command)
            found += re.findall(r"\bor: (te [^#]+)", comment)
    found += re.findall(r"`(te [^`]+)`", text)
    found += re.findall(r"`(trade-executor [a-z][a-z-]+(?: [^`]*)?)`", text)
    for synopsis in re.findall(r"`((?:protect|close|resolve)(?: [A-Z]+)?(?: \[[^`]+\])+)`", text):
        found.append("te " + re.sub(r"[\[\]]", "", synopsis))
    return [" ".join(c.split()) for c in found]


def argv_of(command: str) -> list[str]:
    """The command's arguments for the parser: after `te`/`trade-executor`, up to a redirection
    or a pipe, placeholders filled in, `P` a price."""
    import shlex

    words = shlex.split(command)[1:]
    for stop in (">", "|"):
        if stop in words:
            words = words[: words.index(stop)]
    return [PLACEHOLDERS.get(w, "1.25" if w == "P" else w) for w in words]


def test_every_command_the_runbook_gives_parses_as_written() -> None:
    """Each remedy the RUNBOOK gives (resolve, resolve-position, close --force, protect, ...)
    must be accepted by the command's own parser: the flags exist, the arguments fit. A bare
    `te show` names a command (it must exist)."""
    from trade_executor.cli.main import build_parser

    parser = build_parser()
    commands = runbook_commands()
    assert any("resolve-position" in c for c in commands)
    assert any("--exit-price" in c and c.startswith("te resolve ") for c in commands)
    assert any("protect SYMBOL --stop P --take-profit P --force" in c for c in commands)
    names = {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }
    refused: list[str] = []
    for command in commands:
        argv = argv_of(command)
        if not argv or argv[0] not in names:
            refused.append(f"{command}: no such command")
            continue
        if len(argv) == 1:
            continue  # a command named, not a command line
        try:
            parser.parse_args(argv)
        except SystemExit as exit:
            if exit.code not in (0, None):
                refused.append(command)
    assert refused == [], "RUNBOOK command lines the CLI refuses"
