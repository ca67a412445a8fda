"""The package's public names are pinned: adding or dropping one is a decision, not an accident."""

from __future__ import annotations

import subprocess
import sys

import trade_executor

PUBLIC = ["ConfigError", "Service", "Settings", "__version__", "load_settings", "main"]


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(trade_executor.__all__) == sorted(PUBLIC)


def test_each_public_name_resolves_to_what_it_names() -> None:
    from trade_executor.cli.main import main
    from trade_executor.config.settings import Settings
    from trade_executor.config.sources import ConfigError, load_settings
    from trade_executor.service.run import Service

    assert trade_executor.Settings is Settings
    assert trade_executor.load_settings is load_settings
    assert trade_executor.ConfigError is ConfigError
    assert trade_executor.Service is Service
    assert trade_executor.main is main
    assert isinstance(trade_executor.__version__, str)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        _ = trade_executor.Executor
    except AttributeError as error:
        assert "Executor" in str(error)
    else:
        raise AssertionError("an internal name must not be public")


def test_importing_the_package_loads_none_of_its_components() -> None:
    code = (
        "import sys, trade_executor; "
        "print(sorted(m for m in sys.modules if m.startswith('trade_executor.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
