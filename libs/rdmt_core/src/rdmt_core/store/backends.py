"""Connections to the two ClickHouse engines RDMT can store into.

* ``chdb:///abs/path`` or ``chdb://relative/path`` (or a bare path): chDB, the
  in-process ClickHouse engine, persisting to a local directory. The default.
* ``clickhouse://user:password@host:8123/database`` (``clickhouses://`` for
  HTTPS): a ClickHouse server through clickhouse-connect (``pip install
  rdmt-core[server]``).

Both expose the same four operations, so the SQL in :mod:`rdmt_core.store` is
written once. chDB holds one database directory per process: a second store at
a different path must wait until the first is closed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote, urlparse

import pandas as pd

from ..errors import StoreError


class Backend(Protocol):
    database: str

    def execute(self, sql: str) -> None: ...
    def use_database(self) -> None: ...
    def query(self, sql: str) -> pd.DataFrame: ...
    def insert(self, table: str, frame: pd.DataFrame) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class StoreURL:
    scheme: str  # "chdb" or "clickhouse"
    path: str = ""
    host: str = ""
    port: int = 8123
    username: str = "default"
    password: str = field(default="", repr=False)
    database: str = "rdmt"
    secure: bool = False

    @property
    def display(self) -> str:
        """The URL without its password, for messages."""
        if self.scheme == "chdb":
            return f"chdb://{self.path}"
        scheme = "clickhouses" if self.secure else "clickhouse"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.database}"


_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    return re.sub(r"(//[^/@:]*):[^@/]*@", r"\1:***@", url)


def parse_store_url(url: str) -> StoreURL:
    """Parse a store URL (``chdb://DIR``, ``chdb:///ABS/DIR``, ``clickhouse[s]://...``); errors never repeat a password.

    A bare path is refused rather than guessed: ``notaurl`` would otherwise become a store folder in the
    current directory, and ``chdb:/x`` one at the filesystem root.
    """
    parsed = urlparse(url)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:
        path = unquote(parsed.path if parsed.scheme == "file" else url)
        raise StoreError(
            f"store {redact(url)!r} is not a store URL: use chdb://{path.lstrip('/')} for a chDB directory relative "
            f"to the current one, chdb:///{path.lstrip('/')} for an absolute path, or clickhouse://HOST:8123/DATABASE"
        )
    if parsed.scheme == "chdb":
        if not url.startswith("chdb://"):
            rest = url[len("chdb:") :]
            raise StoreError(
                f"store {redact(url)}: a chDB URL starts with chdb:// (chdb://{rest.lstrip('/')} for a relative "
                f"directory, chdb:///{rest.lstrip('/')} for an absolute one)"
            )
        path = unquote(parsed.netloc + parsed.path)
        if not path:
            raise StoreError(f"store {redact(url)}: chdb URL has no path (use chdb:///abs/dir or chdb://rel/dir)")
        return StoreURL("chdb", path=path)
    if parsed.scheme in ("clickhouse", "clickhouses"):
        if not parsed.hostname:
            raise StoreError(f"store {redact(url)}: no host in ClickHouse URL")
        secure = parsed.scheme == "clickhouses"
        try:
            port = parsed.port or (8443 if secure else 8123)
        except ValueError:
            raise StoreError(f"store {redact(url)}: the port is not a number") from None
        database = parsed.path.strip("/") or "rdmt"
        if not _DATABASE_NAME.match(database):
            raise StoreError(f"store {redact(url)}: database name {database!r} must match {_DATABASE_NAME.pattern}")
        return StoreURL(
            "clickhouse",
            host=parsed.hostname,
            port=port,
            username=unquote(parsed.username or "default"),
            password=unquote(parsed.password or ""),
            database=database,
            secure=secure,
        )
    raise StoreError(f"store {redact(url)}: unknown scheme '{parsed.scheme}' (use chdb:// or clickhouse://)")


class ChdbBackend:
    """chDB session on a local directory."""

    def __init__(self, path: str, database: str = "rdmt") -> None:
        from chdb import session  # imported here: chDB loads a large native library

        self.database = database
        self.path = os.path.abspath(path)
        self._float_columns: dict[str, frozenset[str]] = {}
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StoreError(f"store chdb://{path}: {self.path} is a file, not a store directory (choose another path)")
        try:
            os.makedirs(self.path, exist_ok=True)
            self._session = session.Session(self.path)
        except Exception as exc:
            raise StoreError(f"store chdb://{path}: cannot open ({_short(exc)})") from exc

    def execute(self, sql: str) -> None:
        self._session.query(sql)

    def use_database(self) -> None:
        """Make RDMT's database the session's default, so queries may name tables without it."""
        self._session.query(f"USE {self.database}")

    def query(self, sql: str) -> pd.DataFrame:
        return self._session.query(sql, "DataFrame")

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        # chDB's Python() table function reads a pandas NaN as NULL, which a non-Nullable Float64 column
        # would store as 0: put NaN back for those columns (Nullable ones keep NULL, as on a server).
        plain_floats = self._plain_float_columns(table)
        selected = ", ".join(f"ifNull({c}, nan) AS {c}" if c in plain_floats else c for c in frame.columns)
        columns = ", ".join(frame.columns)
        self._session.query(f"INSERT INTO {self.database}.{table} ({columns}) SELECT {selected} FROM Python(frame)")

    def _plain_float_columns(self, table: str) -> frozenset[str]:
        cached = self._float_columns.get(table)
        if cached is None:
            described = self.query(
                f"SELECT name FROM system.columns WHERE database = '{self.database}' AND table = '{table}' "
                "AND type IN ('Float64', 'Float32')"
            )
            cached = self._float_columns[table] = frozenset(described["name"])
        return cached

    def close(self) -> None:
        self._session.close()


class ClickHouseServerBackend:
    """A ClickHouse server through clickhouse-connect."""

    def __init__(self, url: StoreURL) -> None:
        try:
            import clickhouse_connect
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise StoreError(
                f"store {url.display}: clickhouse-connect is not installed (pip install 'rdmt-core[server]')"
            ) from exc
        self.database = url.database
        try:
            with _quiet_http_logs():  # the one message is ours, below; not urllib3's retries and driver warnings
                self._client = clickhouse_connect.get_client(
                    host=url.host,
                    port=url.port,
                    username=url.username,
                    password=url.password,
                    secure=url.secure,
                    connect_timeout=10,
                )
        except Exception as exc:
            raise StoreError(
                f"store {url.display}: cannot reach the ClickHouse server ({_reason(exc)}); check the host and "
                "port (8123 for HTTP, 8443 for HTTPS) and that the server is running"
            ) from exc

    def execute(self, sql: str) -> None:
        self._client.command(sql)

    def use_database(self) -> None:
        """Make RDMT's database the client's default, so queries may name tables without it."""
        self._client.database = self.database

    def query(self, sql: str) -> pd.DataFrame:
        return self._client.query_df(sql)

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        self._client.insert_df(f"{self.database}.{table}", frame)

    def close(self) -> None:
        self._client.close()


def connect(url: str) -> tuple[Backend, StoreURL]:
    parsed = parse_store_url(url)
    if parsed.scheme == "chdb":
        return ChdbBackend(parsed.path, parsed.database), parsed
    return ClickHouseServerBackend(parsed), parsed


@contextlib.contextmanager
def _quiet_http_logs() -> Iterator[None]:
    """Hold back urllib3's and clickhouse-connect's warnings while connecting (the StoreError says it all)."""
    loggers = [logging.getLogger(name) for name in ("urllib3", "clickhouse_connect")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _reason(exc: BaseException) -> str:
    """The root cause of a connection error in a few words (e.g. "Connection refused")."""
    text = str(exc)
    for pattern in (r"\[Errno -?\d+\] ([^\"')]+)", r"(timed out)", r"(Name or service not known)"):
        match = re.search(pattern, text)
        if match:
            return match.group(1).strip()
    return _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
