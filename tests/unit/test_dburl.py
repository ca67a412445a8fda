"""DATABASE_URL with several hosts, in both of libpq's forms (`trade_executor.config.dburl`):
what asyncpg is handed, what a log or a message shows, and the refusals."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from trade_executor.config.dburl import DatabaseUrlError, Server, parse_database_url
from trade_executor.config.redact import redact_dsn
from trade_executor.config.sources import ConfigError, load_settings
from trade_executor.store.failures import where


def test_url_with_several_hosts_keeps_each_port_and_asks_for_the_primary() -> None:
    url = parse_database_url("postgresql://trader:pw@db1:5432,db2:5433/trading")
    assert url.servers == (Server("db1", 5432), Server("db2", 5433))
    assert (url.user, url.password, url.database) == ("trader", "pw", "trading")
    # No target_session_attrs given: the service writes, so the primary.
    assert url.to_url() == (
        "postgresql://trader:pw@db1:5432,db2:5433/trading?target_session_attrs=read-write"
    )


def test_keyword_form_is_converted_to_the_url_asyncpg_reads() -> None:
    url = parse_database_url(
        "host=10.0.0.1,10.0.0.2 port=5432 dbname=trading user=trader "
        r"password='it\'s' target_session_attrs=read-write sslmode=prefer"
    )
    assert url.servers == (Server("10.0.0.1", 5432), Server("10.0.0.2", 5432))
    assert url.to_url() == (
        "postgresql://trader:it%27s@10.0.0.1:5432,10.0.0.2:5432/trading"
        "?target_session_attrs=read-write&sslmode=prefer"
    )


def test_keyword_form_quoting_and_one_port_per_host() -> None:
    url = parse_database_url(r"host=a,b port=5432,6432 dbname='my db' password='x\'y z'")
    assert url.servers == (Server("a", 5432), Server("b", 6432))
    assert url.database == "my db"
    assert url.password == "x'y z"


def test_ipv6_hosts_in_a_list() -> None:
    url = parse_database_url("postgresql://u@[::1]:5432,[fe80::2]/db")
    assert url.servers == (Server("::1", 5432), Server("fe80::2", 5432))
    assert url.hosts_text() == "[::1]:5432,[fe80::2]:5432"


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        (
            "postgresql://u@a,b/db?target_session_attrs=any",
            "target_session_attrs=any could connect to a standby",
        ),
        ("host=a,b port=1,2,3 dbname=x", "names 2 hosts but 3 ports"),
        ("postgresql://u@a,,b/db", "empty host"),
        ("postgresql://u@a:99999,b/db", "bad port"),
        ("dbname=x user=y", "names no host"),
        ("host='a", "not a parsable list"),
    ],
)
def test_refusals_are_one_sentence(text: str, sentence: str) -> None:
    with pytest.raises(DatabaseUrlError, match=sentence):
        parse_database_url(text)


def test_primary_is_an_accepted_target() -> None:
    url = parse_database_url("postgresql://u@a,b/db?target_session_attrs=primary")
    assert url.target_session_attrs == "primary"


def test_redaction_and_messages_name_every_host_and_no_secret() -> None:
    dsn = "postgresql://trader:s3cret@db1:5432,db2:5433/trading?sslpassword=x"
    assert redact_dsn(dsn) == "postgresql://***:***@db1:5432,db2:5433/trading"
    keywords = "host=db1,db2 port=5432 dbname=trading user=trader password=s3cret"
    assert redact_dsn(keywords) == "postgresql://***:***@db1:5432,db2:5432/trading"
    assert where(dsn) == "db1:5432,db2:5433/trading"


def test_settings_accept_several_hosts_and_merge_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "host=db1,db2 port=5432,5433 dbname=trading user=trader")
    monkeypatch.setenv("DATABASE_PASSWORD", "p@ss word")
    settings = load_settings()
    assert settings.dsn() == (
        f"postgresql://trader:{quote('p@ss word', safe='')}@db1:5432,db2:5433/trading"
        "?target_session_attrs=read-write"
    )
    assert settings.redacted()["DATABASE_URL"] == "postgresql://***:***@db1:5432,db2:5433/trading"


def test_settings_refuse_a_standby_target_without_echoing_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = "postgresql://u:topsecret@a,b/db?target_session_attrs=standby"
    monkeypatch.setenv("DATABASE_URL", value)
    with pytest.raises(ConfigError, match="DATABASE_URL") as caught:
        load_settings()
    assert "topsecret" not in str(caught.value)
    assert "target_session_attrs=standby could connect to a standby" in str(caught.value)
