"""A private Postgres cluster under <data_dir>/postgres, on its own port.

Managed only when DATABASE_URL points at the loopback address and BILLING_POSTGRES_PORT;
otherwise the server is someone else's and we only check that it answers.

As root, initdb and pg_ctl run as the `postgres` OS user (initdb refuses root), and the
data dir is owned by that user. The cluster is initialised into a temporary directory
and renamed into place, so a half-finished initdb never looks like a cluster.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from contracts.settings import Settings

from ._proc import (
    LOOPBACK_HOSTS,
    UP_HINT,
    StackError,
    apt_install,
    cmdline_matches,
    read_pid,
    rotate_log,
    run,
    run_async,
    tail,
)
from .base import ServiceStatus, mask_url
from .managed import Endpoint, Health, ManagedService

NAME = "postgres"
OS_USER = "postgres"
START_TIMEOUT = 60
CONF_FILE = "billing_stack.conf"


@dataclass(frozen=True, slots=True)
class PgTarget:
    host: str
    port: int
    user: str
    password: str
    database: str
    dsn: str  # for asyncpg (plain postgresql:// scheme)
    url: str  # as configured, for messages (masked)
    managed: bool


def target(settings: Settings) -> PgTarget:
    url = settings.database_url
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 5432
    dsn = "postgresql" + url[len(parts.scheme) :] if parts.scheme.startswith("postgres") else url
    return PgTarget(
        host=host,
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/") or "postgres"),
        dsn=dsn,
        url=url,
        managed=host in LOOPBACK_HOSTS and port == settings.postgres_port,
    )


def socket_dir(settings: Settings) -> Path:
    """Where the Unix socket lives: under the data dir, unless that path is too long for a
    socket (about 107 bytes on Linux), then a short directory in /tmp named after it."""
    path = settings.data_dir / "postgres-run"
    if len(str(path / ".s.PGSQL.65535.lock")) <= 100:
        return path
    digest = hashlib.sha256(str(settings.data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"billing-pg-{digest}"


# --------------------------------------------------------------------------- binaries


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", path.parent.parent.name)) or (0,)


def find_bindir(want_major: str | None = None) -> Path | None:
    """Directory holding pg_ctl/initdb: Debian's /usr/lib/postgresql/<v>/bin (highest, or
    the major version the data dir was made with), else whatever is on PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=_version_key, reverse=True)
    if want_major:
        candidates = [c for c in candidates if c.parent.parent.name == want_major]
    if candidates:
        return candidates[0].parent
    on_path = shutil.which("pg_ctl")
    if on_path and not want_major:
        return Path(os.path.realpath(on_path)).parent
    return None


def _ensure_bindir(settings: Settings, say: Callable[[str], None]) -> Path:
    version_file = pgdata(settings) / "PG_VERSION"
    want = version_file.read_text().strip() if version_file.exists() else None
    bindir = find_bindir(want)
    if bindir is None:
        if want:
            package = f"postgresql-{want}"
            why = f"the cluster in {pgdata(settings)} was made by Postgres {want}, whose server binaries are missing"
        else:
            package = "postgresql"
            why = "the Postgres server binaries (pg_ctl, initdb) are not installed"
        say(f"postgres: {why}; installing Debian package {package} (apt-get)...")
        apt_install([package], why=why)
        bindir = find_bindir(want)
        if bindir is None:
            raise StackError(f"postgres: installed {package} but still found no pg_ctl under /usr/lib/postgresql/*/bin")
    return bindir


def _as_owner() -> list[str]:
    """Command prefix to run a Postgres tool as the cluster owner."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", OS_USER, "--"]


def _owner_ids() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    try:
        pw = pwd.getpwnam(OS_USER)
    except KeyError:
        raise StackError(
            f"postgres: no `{OS_USER}` OS user to run the cluster as (initdb refuses root). "
            f"Install the Debian `postgresql` package (it creates the user) or `useradd --system {OS_USER}`."
        ) from None
    return pw.pw_uid, pw.pw_gid


def _ensure_traversable(path: Path, say: Callable[[str], None]) -> None:
    """Make sure the postgres OS user can reach `path` (adds o+x on parents that lack it)."""
    if os.geteuid() != 0:
        return
    probe = run(["runuser", "-u", OS_USER, "--", "test", "-x", str(path)], timeout=15, what="postgres", check=False)
    if probe.returncode == 0:
        return
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(p, mode | stat.S_IXOTH)
            say(f"postgres: added o+x to {p} so the `{OS_USER}` user can reach its data dir")


# --------------------------------------------------------------------------- init & config


def _initdb(settings: Settings, bindir: Path, say: Callable[[str], None]) -> None:
    data = pgdata(settings)
    if (data / "PG_VERSION").exists():
        return
    if data.exists() and any(data.iterdir()):
        raise StackError(
            f"postgres: {data} exists but is not a Postgres data directory (no PG_VERSION). "
            f"Move it away and run {UP_HINT} again."
        )
    uid, gid = _owner_ids()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _ensure_traversable(settings.data_dir, say)
    tmp = settings.data_dir / "postgres.initdb-tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(mode=0o700)
    os.chown(tmp, uid, gid)
    say(f"postgres: initdb {data} ...")
    run(
        [
            *_as_owner(),
            bindir / "initdb",
            "-D",
            tmp,
            "-U",
            "postgres",
            "--encoding=UTF8",
            "--no-locale",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ],
        timeout=180,
        what="postgres: initdb",
        cwd="/",
    )
    with open(tmp / "postgresql.conf", "a") as f:
        f.write(
            "\n# Written by `billing stack up` (stack/postgres.py): port, sockets, tuning.\n"
            f"include_if_exists = '{CONF_FILE}'\n"
        )
    if data.exists():
        data.rmdir()  # empty (checked above)
    tmp.rename(data)


def _write_conf(settings: Settings, port: int) -> None:
    """Rewritten before every start, so the cluster follows the settings."""
    uid, gid = _owner_ids()
    sock = socket_dir(settings)
    sock.mkdir(parents=True, exist_ok=True)
    os.chmod(sock, 0o700)
    os.chown(sock, uid, gid)
    conf = pgdata(settings) / CONF_FILE
    conf.write_text(
        "# Managed by `billing stack up` (stack/postgres.py); rewritten on every start.\n"
        "listen_addresses = '127.0.0.1'\n"
        f"port = {port}\n"
        f"unix_socket_directories = '{sock}'\n"
        "unix_socket_permissions = 0700\n"
        "timezone = 'UTC'\n"
        "log_timezone = 'UTC'\n"
        "# Sized for a 2-core test box; fsync stays on.\n"
        "max_connections = 200\n"
        "shared_buffers = 256MB\n"
        "effective_cache_size = 1GB\n"
        "work_mem = 8MB\n"
        "maintenance_work_mem = 128MB\n"
        "wal_buffers = 16MB\n"
        "max_wal_size = 1GB\n"
        "checkpoint_timeout = 15min\n"
        "random_page_cost = 1.1\n"
        "max_worker_processes = 4\n"
        "max_parallel_workers = 2\n"
        "max_parallel_workers_per_gather = 1\n"
        "max_parallel_maintenance_workers = 1\n"
        "log_line_prefix = '%m [%p] %q%u@%d '\n"
        "log_min_duration_statement = 2000\n"
    )
    os.chown(conf, uid, gid)


# --------------------------------------------------------------------------- health & bootstrap


async def _connect_as_superuser(settings: Settings) -> Any:
    """As `postgres` over the cluster's Unix socket (trusted: initdb --auth-local=trust)."""
    import asyncpg

    return await asyncpg.connect(
        host=str(socket_dir(settings)), port=target(settings).port, user="postgres", database="postgres", timeout=10
    )


async def _superuser_select_1(settings: Settings) -> None:
    conn = await _connect_as_superuser(settings)
    try:
        await conn.fetchval("select 1")
    finally:
        await conn.close(timeout=5)


async def _select_1(dsn: str, database: str | None = None) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5, **({"database": database} if database else {}))
    try:
        value = await conn.fetchval("select 1")
        if value != 1:
            raise RuntimeError(f"select 1 returned {value!r}")
    finally:
        await conn.close(timeout=5)


@dataclass(frozen=True, slots=True)
class Probe:
    error: str | None  # the server does not answer, or refuses the role: not healthy
    database_missing: bool = False  # the server and role are fine, the database is not there (yet)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.database_missing


def check(settings: Settings) -> Probe:
    """`select 1` at DATABASE_URL; when only its database is missing, check the server
    with the same role on the `postgres` database (tests create theirs in fixtures)."""
    import asyncpg

    t = target(settings)
    try:
        run_async(lambda: _select_1(t.dsn), timeout=10)
    except asyncpg.InvalidCatalogNameError:
        try:
            run_async(lambda: _select_1(t.dsn, database="postgres"), timeout=10)
        except Exception as exc:
            return Probe(_error_text(exc))
        return Probe(None, database_missing=True)
    except Exception as exc:
        return Probe(_error_text(exc))
    return Probe(None)


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def probe(settings: Settings) -> str | None:
    """None when the server answers `select 1` for DATABASE_URL's role, else the error."""
    return check(settings).error


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def _bootstrap(settings: Settings, t: PgTarget) -> list[str]:
    """Create the application role (superuser: tests CREATE DATABASE) and database."""
    done = []
    conn = await _connect_as_superuser(settings)
    try:
        role = _quote_ident(t.user)
        if await conn.fetchval("select 1 from pg_roles where rolname = $1", t.user):
            await conn.execute(f"alter role {role} with login superuser password {_quote_literal(t.password)}")
        else:
            await conn.execute(f"create role {role} with login superuser password {_quote_literal(t.password)}")
            done.append(f"role {t.user}")
        if not await conn.fetchval("select 1 from pg_database where datname = $1", t.database):
            await conn.execute(f"create database {_quote_ident(t.database)} owner {role}")
            done.append(f"database {t.database}")
    finally:
        await conn.close(timeout=5)
    return done


async def _create_database_over_tcp(t: PgTarget) -> None:
    import asyncpg

    conn = await asyncpg.connect(t.dsn, database="postgres", timeout=10)
    try:
        if not await conn.fetchval("select 1 from pg_database where datname = $1", t.database):
            await conn.execute(f"create database {_quote_ident(t.database)}")
    finally:
        await conn.close(timeout=5)


# --------------------------------------------------------------------------- the service


class Postgres(ManagedService):
    name = NAME
    setting = "DATABASE_URL"
    port_setting = "BILLING_POSTGRES_PORT and DATABASE_URL"
    server_needle = "postgres"
    start_timeout = START_TIMEOUT
    # SIGINT is Postgres's "fast" shutdown (SIGTERM would wait for every client to leave).
    stop_signal = signal.SIGINT
    owns_pid_file = False  # postmaster.pid: the postmaster writes it and removes it when it exits

    def endpoint(self, settings: Settings) -> Endpoint:
        t = target(settings)
        return Endpoint(t.managed, f"{t.host}:{t.port}", t.port)

    def pid_file(self, settings: Settings) -> Path:
        return self.home(settings) / "postmaster.pid"

    def signature(self, settings: Settings) -> tuple[str, ...]:
        return ("postgres",)

    def health(self, settings: Settings) -> Health:
        t = target(settings)
        result = check(settings)
        if result.database_missing:
            return Health(None, f"server up; database {t.database} does not exist yet (`billing stack up` creates it)")
        return Health(result.error, f"db {t.database}, user {t.user}")

    def external_detail(self, settings: Settings, health: Health) -> str:
        return f"DATABASE_URL={mask_url(settings.database_url)}; {health.error or health.detail}"

    def reused_detail(self, settings: Settings, owner: int, health: Health) -> str:
        return f"{super().reused_detail(settings, owner, health)}; {health.detail}"

    def unreachable_external(self, settings: Settings, error: str) -> str:
        return (
            f"postgres: DATABASE_URL={mask_url(settings.database_url)} points at a server `billing stack up` does not "
            f"manage (not 127.0.0.1:{settings.postgres_port}), and it does not answer: {error}. "
            "Start that server, or unset DATABASE_URL to use the local stack."
        )

    def prepare(self, settings: Settings, say: Callable[[str], None]) -> list[str | Path]:
        bindir = _ensure_bindir(settings, say)
        _initdb(settings, bindir, say)
        _ensure_traversable(pgdata(settings), say)
        pid_file = self.pid_file(settings)
        stale = read_pid(pid_file)
        if stale is not None and not cmdline_matches(stale, *self.signature(settings)):
            pid_file.unlink(missing_ok=True)  # left by a crash; its pid is not a postgres now
        _write_conf(settings, target(settings).port)
        return [
            *_as_owner(),
            bindir / "pg_ctl",
            "-D",
            pgdata(settings),
            "-l",
            self.log_file(settings),
            "-w",
            "-t",
            str(START_TIMEOUT),
            "-s",
            "start",
        ]

    def launch(self, settings: Settings, say: Callable[[str], None]) -> int | None:
        """pg_ctl starts the postmaster detached (it writes postmaster.pid) and waits until it
        takes connections."""
        command = self.prepare(settings, say)
        log = self.log_file(settings)
        rotate_log(log)
        say(self.starting_message(settings))
        try:
            run(command, timeout=START_TIMEOUT + 15, what="postgres: pg_ctl start", cwd="/")
        except StackError as exc:
            raise StackError(
                f"postgres did not start on 127.0.0.1:{target(settings).port} within {START_TIMEOUT} s. "
                f"Read {log}:\n{tail(log)}\n({exc})"
            ) from None
        return self.running_pid(settings)

    def answers(self, settings: Settings) -> str | None:
        """`select 1` as the cluster's superuser over its socket: DATABASE_URL's role and
        database may not exist before `ready`."""
        try:
            run_async(lambda: _superuser_select_1(settings), timeout=10)
        except Exception as exc:
            return _error_text(exc)
        return None

    def ready(self, settings: Settings, say: Callable[[str], None]) -> ServiceStatus:
        """Create what DATABASE_URL names and is missing: in our cluster the role and the
        database (over the socket, as the superuser); in a reused server only the database."""
        t = target(settings)
        result = check(settings)
        if not result.ok and self.running_pid(settings) is not None:
            # Settings changed, a fresh cluster, or the database was dropped.
            created = run_async(lambda: _bootstrap(settings, t), timeout=30)
            if created:
                say(f"postgres: created {', '.join(created)}")
        elif result.database_missing:
            run_async(lambda: _create_database_over_tcp(t), timeout=30)
            say(f"postgres: created database {t.database}")
        st = self.status(settings)
        if not st.healthy or not check(settings).ok:
            raise StackError(
                f"postgres runs (pid {st.pid}) but `select 1` at {mask_url(settings.database_url)} fails: "
                f"{st.detail}. Read {self.log_file(settings)}."
            )
        return st


SERVICE = Postgres()
pgdata = SERVICE.home  # the cluster's data directory
log_file = SERVICE.log_file
