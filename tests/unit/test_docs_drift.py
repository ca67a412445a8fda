"""The docs say what the code does (review finding "docs drift"): docs/SETTINGS.md lists every
setting with its real default, the README's HTTP API list is the app's routes (read from the app,
so a new route fails here until the README names it), every `/api/...` path the README names is
served, and no shipped doc cites CONTRACT sections the install does not ship."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.routing import Mount, Route

from trade_executor.api.app import create_app
from trade_executor.config import Settings

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


def test_no_shipped_doc_cites_the_contract() -> None:
    """CONTRACT.md is the project's, not the install's: a reader of docs/ cannot look it up."""
    citing = [
        f"{doc.relative_to(ROOT)}:{number}"
        for doc in SHIPPED_DOCS
        for number, line in enumerate(doc.read_text().splitlines(), 1)
        if re.search(r"\bCONTRACT\b", line)
    ]
    assert citing == []
