"""Real Apache Kafka and PostgreSQL servers for the test suite.

Plain functions and context managers (no pytest fixtures); ``tests/conftest.py``
wraps them. Each service comes from the first source that is available:

1. an address given in the environment (``CRMLEDGER_TEST_KAFKA``,
   ``CRMLEDGER_TEST_DB_URL``),
2. a container started with testcontainers when a Docker engine answers
   (set ``CRMLEDGER_TEST_USE_DOCKER=0`` to skip this),
3. a local process started by ``scripts/kafka-local`` or
   ``scripts/postgres-local`` in a temporary directory on a free port.

Every function prints one line to stderr naming the source it used, so test
output shows which real server the tests ran against.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from sqlalchemy.engine import URL, make_url

__all__ = [
    "KAFKA_IMAGE",
    "POSTGRES_IMAGE",
    "docker_available",
    "fresh_postgres_database",
    "kafka_bootstrap",
    "postgres_url",
]

KAFKA_IMAGE = "apache/kafka:4.3.1"
POSTGRES_IMAGE = "postgres:15"

_SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
_KAFKA_LOCAL = _SCRIPTS / "kafka-local"
_POSTGRES_LOCAL = _SCRIPTS / "postgres-local"
_DOCKER_CHECK_TIMEOUT_S = 5.0
# Covers a first-time jar download from Maven Central inside `start`.
_KAFKA_START_TIMEOUT_S = 600
_POSTGRES_START_TIMEOUT_S = 120
_STOP_TIMEOUT_S = 120
_START_ATTEMPTS = 3

_docker_answer: bool | None = None


def _announce(message: str) -> None:
    print(f"crmledger tests: {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping_docker() -> bool:
    try:
        import docker
        from testcontainers.core.docker_client import get_docker_host
    except ImportError:
        return False
    try:
        # Same host resolution as testcontainers (properties file, DOCKER_HOST,
        # docker context), but with a short request timeout.
        host = get_docker_host()
        client = (
            docker.DockerClient(base_url=host, timeout=3) if host else docker.from_env(timeout=3)
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def docker_available() -> bool:
    """Return whether a Docker engine answers a ping within a few seconds.

    Never raises and never blocks for more than about five seconds, even
    when the docker client is installed without a daemon or ``DOCKER_HOST``
    points at an unreachable address. The answer is cached for the process.
    ``CRMLEDGER_TEST_USE_DOCKER=0`` forces ``False``.
    """
    global _docker_answer
    if os.environ.get("CRMLEDGER_TEST_USE_DOCKER", "").strip().lower() in {"0", "false", "no"}:
        return False
    if _docker_answer is None:
        result: list[bool] = []
        # A thread bounds the whole check, not just one request: ssh:// hosts
        # and odd proxies can stall outside docker-py's request timeout.
        worker = threading.Thread(target=lambda: result.append(_ping_docker()), daemon=True)
        worker.start()
        worker.join(_DOCKER_CHECK_TIMEOUT_S)
        _docker_answer = bool(result and result[0])
    return _docker_answer


def _run_script(script: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    # Through bash so a checkout that lost the executable bit still works.
    return subprocess.run(
        ["bash", str(script), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def _local_service(script: Path, prefix: str, start_timeout: float) -> Iterator[tuple[str, str]]:
    """Start ``script`` in a temp dir on a free port; yield (stdout line, stderr)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        # The port is free when picked but could be taken before the server
        # binds it; the scripts refuse a busy port, so retry on a new one.
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = _free_port()
            started = _run_script(
                script, "start", "--dir", str(workdir), "--port", str(port), timeout=start_timeout
            )
            if started.returncode == 0:
                break
            if "already in use" not in started.stderr or attempt == _START_ATTEMPTS:
                raise RuntimeError(
                    f"{script.name} start failed (exit {started.returncode}):\n{started.stderr}"
                )
        try:
            yield started.stdout.strip().splitlines()[-1], started.stderr
        finally:
            stopped = _run_script(script, "stop", "--dir", str(workdir), timeout=_STOP_TIMEOUT_S)
            if stopped.returncode != 0:
                print(stopped.stderr, file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _kafka_container() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.docker_client import DockerClient
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    # testcontainers' KafkaContainer only drives Confluent cp-kafka images, so
    # the Apache image (the one compose.yaml uses) runs as a generic
    # container. Kafka advertises the address clients must dial, hence the
    # same port inside and outside the container.
    host = DockerClient().host()
    port = _free_port()
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(port, port)
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS=f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://0.0.0.0:9093",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://{host}:{port}",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
            KAFKA_NUM_PARTITIONS="1",
            KAFKA_HEAP_OPTS="-Xms256m -Xmx512m",
        )
        .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    )
    with container:
        yield f"{host}:{port}"


@contextmanager
def kafka_bootstrap() -> Iterator[str]:
    """Yield the ``host:port`` bootstrap address of a real Kafka broker.

    Uses ``CRMLEDGER_TEST_KAFKA`` when set; else an ``apache/kafka``
    container when Docker answers; else a broker started with
    ``scripts/kafka-local`` (needs Java 17+ and Maven) that is stopped and
    deleted on exit.
    """
    configured = os.environ.get("CRMLEDGER_TEST_KAFKA", "").strip()
    if configured:
        _announce(f"Kafka from CRMLEDGER_TEST_KAFKA at {configured}")
        yield configured
        return
    if docker_available():
        with _kafka_container() as bootstrap:
            _announce(f"Kafka container {KAFKA_IMAGE} at {bootstrap}")
            yield bootstrap
        return
    with _local_service(_KAFKA_LOCAL, "crmledger-kafka-", _KAFKA_START_TIMEOUT_S) as (
        bootstrap,
        progress,
    ):
        ready = re.search(r"Kafka (\S+) ready after (\d+)s", progress)
        detail = f"Kafka {ready[1]} local process" if ready else "Kafka local process"
        timing = f" (ready in {ready[2]}s)" if ready else ""
        _announce(f"{detail} at {bootstrap}{timing}")
        yield bootstrap


def _psycopg_url(url: str) -> str:
    parsed = make_url(url)
    # Accept plain libpq-style URLs in the environment variable too.
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@contextmanager
def postgres_url() -> Iterator[str]:
    """Yield a SQLAlchemy URL (``postgresql+psycopg://...``) of a real server.

    Uses ``CRMLEDGER_TEST_DB_URL`` when set; else a ``postgres:15``
    container when Docker answers; else a server started with
    ``scripts/postgres-local`` (needs the PostgreSQL server binaries) that is
    stopped and deleted on exit.
    """
    configured = os.environ.get("CRMLEDGER_TEST_DB_URL", "").strip()
    if configured:
        url = _psycopg_url(configured)
        _announce(f"PostgreSQL from CRMLEDGER_TEST_DB_URL at {_where(url)}")
        yield url
        return
    if docker_available():
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers before the community/ layout
            from testcontainers.postgres import PostgresContainer
        with PostgresContainer(
            POSTGRES_IMAGE,
            username="crmledger",
            password="crmledger",
            dbname="crmledger",
            driver="psycopg",
        ) as container:
            url = container.get_connection_url()
            _announce(f"PostgreSQL container {POSTGRES_IMAGE} at {_where(url)}")
            yield url
        return
    with _local_service(_POSTGRES_LOCAL, "crmledger-pg-", _POSTGRES_START_TIMEOUT_S) as (
        url,
        progress,
    ):
        version = re.search(r"\(PostgreSQL\) (\S+)", progress)
        name = f"PostgreSQL {version[1]}" if version else "PostgreSQL"
        _announce(f"{name} local process at {_where(url)}")
        yield url


def _where(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host}:{parsed.port}/{parsed.database}"


def _connect(url: URL, database: str | None = None) -> psycopg.Connection[TupleRow]:
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=database or url.database,
        autocommit=True,
        connect_timeout=10,
    )


def fresh_postgres_database(url: str, name: str) -> str:
    """Create an empty database ``name`` on the server of ``url``; return its URL.

    An existing database of that name is dropped first (``WITH (FORCE)``,
    PostgreSQL 13+), so a re-run starts empty too. The new database is cloned
    from ``template0`` so nothing added to ``template1`` leaks in.
    """
    server = make_url(_psycopg_url(url))
    with _connect(server) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident))
    return server.set(database=name).render_as_string(hide_password=False)
