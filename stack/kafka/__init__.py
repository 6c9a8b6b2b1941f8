"""Apache Kafka 4.1.1 in KRaft mode (one node: broker + controller) under <data_dir>/kafka.

The jars come from Maven Central through `pom.xml` beside this file (copied once into
<data_dir>/kafka/libs); the broker runs on the machine's Java 17:

    java -Xmx512m -cp 'libs/*' kafka.Kafka server.properties

Managed only when KAFKA_BOOTSTRAP_SERVERS is one loopback host:port; the controller
listener is on the next port (19092 -> 19093). Otherwise we only check it answers.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contracts.settings import Settings

from .._proc import LOOPBACK_HOSTS, StackError, apt_install, run, run_async, which
from ..managed import Endpoint, Health, ManagedService

NAME = "kafka"
KAFKA_VERSION = "4.1.1"
POM = Path(__file__).with_name("pom.xml")
JVM_OPTS = [
    "-Xmx512m",
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


@dataclass(frozen=True, slots=True)
class KafkaTarget:
    bootstrap: str
    host: str
    port: int
    controller_port: int
    managed: bool


def target(settings: Settings) -> KafkaTarget:
    bootstrap = settings.kafka_bootstrap_servers.strip()
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    host, port = "", 0
    if len(servers) == 1 and ":" in servers[0]:
        h, _, p = servers[0].rpartition(":")
        host, port = h.strip("[]"), int(p) if p.isdigit() else 0
    managed = len(servers) == 1 and host in LOOPBACK_HOSTS and port > 0
    return KafkaTarget(bootstrap, host, port, port + 1 if port else 0, managed)


def libs_dir(settings: Settings) -> Path:
    return home(settings) / "libs"


def server_properties(settings: Settings) -> Path:
    return home(settings) / "server.properties"


# --------------------------------------------------------------------------- jars


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _ensure_tools(say: Callable[[str], None]) -> tuple[Path, Path]:
    java, mvn = which("java"), which("mvn")
    if java is None or mvn is None:
        missing = [n for n, p in (("java", java), ("mvn", mvn)) if p is None]
        why = f"kafka needs Java 17 and Maven; missing: {', '.join(missing)}"
        say(f"{why}; installing openjdk-17-jre-headless and maven (apt-get)...")
        apt_install(["openjdk-17-jre-headless", "maven"], why=why)
        java, mvn = which("java"), which("mvn")
        if java is None or mvn is None:
            raise StackError(f"{why}, and installing them did not put them on PATH")
    return java, mvn


def _ensure_jars(settings: Settings, mvn: Path, say: Callable[[str], None]) -> None:
    """Copy the broker's runtime jars once; redo only when pom.xml changed."""
    libs = libs_dir(settings)
    marker = libs / ".complete"
    digest = _pom_digest()
    if marker.exists() and marker.read_text().strip() == digest:
        return
    tmp = home(settings) / "libs.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    say(f"kafka: fetching Kafka {KAFKA_VERSION} jars from Maven Central into {libs} (mvn, once) ...")
    t0 = time.monotonic()
    run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            POM,
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ],
        timeout=900,
        what="kafka: mvn dependency:copy-dependencies",
    )
    if not any(tmp.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
        raise StackError(f"kafka: mvn finished but {tmp} has no kafka_2.13-{KAFKA_VERSION}.jar")
    (tmp / ".complete").write_text(digest + "\n")
    if libs.exists():
        shutil.rmtree(libs)
    tmp.rename(libs)
    say(f"kafka: {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - t0:.1f} s")


# --------------------------------------------------------------------------- config


def _cluster_id(settings: Settings) -> str:
    """A Kafka cluster id (16 random bytes, URL-safe base64), made once and kept."""
    path = home(settings) / "cluster.id"
    if path.exists():
        return path.read_text().strip()
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            break
    path.write_text(cid + "\n")
    return cid


def _write_config(settings: Settings, t: KafkaTarget) -> None:
    """Rewritten before every start, so the broker follows the settings."""
    h = home(settings)
    server_properties(settings).write_text(
        "# Managed by `billing stack up` (stack/kafka/__init__.py); rewritten on every start.\n"
        "process.roles=broker,controller\n"
        "node.id=1\n"
        f"controller.quorum.voters=1@127.0.0.1:{t.controller_port}\n"
        f"listeners=PLAINTEXT://127.0.0.1:{t.port},CONTROLLER://127.0.0.1:{t.controller_port}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{t.port}\n"
        "controller.listener.names=CONTROLLER\n"
        "inter.broker.listener.name=PLAINTEXT\n"
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
        f"log.dirs={h / 'data'}\n"
        "auto.create.topics.enable=false\n"
        "num.partitions=1\n"
        "default.replication.factor=1\n"
        "min.insync.replicas=1\n"
        "offsets.topic.replication.factor=1\n"
        "offsets.topic.num.partitions=10\n"
        "transaction.state.log.replication.factor=1\n"
        "transaction.state.log.min.isr=1\n"
        "transaction.state.log.num.partitions=10\n"
        "share.coordinator.state.topic.replication.factor=1\n"
        "share.coordinator.state.topic.min.isr=1\n"
        "group.initial.rebalance.delay.ms=0\n"
        "# Sized for a 2-core test box.\n"
        "num.network.threads=2\n"
        "num.io.threads=4\n"
        "num.recovery.threads.per.data.dir=1\n"
        "log.retention.hours=168\n"
        "log.segment.bytes=268435456\n"
    )
    (h / "log4j2.properties").write_text(
        "# Managed by `billing stack up`: the broker logs to stdout, which goes to kafka.log.\n"
        "status = warn\n"
        "name = billing-stack-kafka\n"
        "# Keep logging through the broker's own shutdown hook (log4j's would stop it first).\n"
        "shutdownHook = disable\n"
        "appender.out.type = Console\n"
        "appender.out.name = STDOUT\n"
        "appender.out.target = SYSTEM_OUT\n"
        "appender.out.layout.type = PatternLayout\n"
        "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = warn\n"
        "rootLogger.appenderRef.out.ref = STDOUT\n"
        "# INFO for start/stop, version and consumer-group lines; everything else WARN.\n"
        "logger.kafka_main.name = kafka.Kafka\n"
        "logger.kafka_main.level = info\n"
        "logger.raftserver.name = kafka.server.KafkaRaftServer\n"
        "logger.raftserver.level = info\n"
        "logger.broker.name = kafka.server.BrokerServer\n"
        "logger.broker.level = info\n"
        "logger.controller.name = kafka.server.ControllerServer\n"
        "logger.controller.level = info\n"
        "logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser\n"
        "logger.appinfo.level = info\n"
        "logger.groups.name = org.apache.kafka.coordinator.group\n"
        "logger.groups.level = info\n"
    )


def _java_cmd(settings: Settings, java: Path, main: str, *args: str | Path) -> list[str | Path]:
    h = home(settings)
    return [
        java,
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile=file:{h / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={h}",
        "-cp",
        f"{libs_dir(settings)}/*",
        main,
        *args,
    ]


def _format_storage(settings: Settings, java: Path, say: Callable[[str], None]) -> None:
    """kafka-storage format, once (meta.properties marks a formatted log dir)."""
    if (home(settings) / "data" / "meta.properties").exists():
        return
    cid = _cluster_id(settings)
    say(f"kafka: formatting storage {home(settings) / 'data'} (cluster id {cid}) ...")
    # No --standalone: controller.quorum.voters is set, and the two don't mix.
    run(
        _java_cmd(settings, java, "kafka.tools.StorageTool", "format", "-t", cid, "-c", server_properties(settings)),
        timeout=120,
        what="kafka: StorageTool format",
        cwd=home(settings),
    )


# --------------------------------------------------------------------------- health


async def _list_topics(bootstrap: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        return list(await admin.list_topics())
    finally:
        await admin.close()


def probe(settings: Settings) -> str | None:
    """None when an admin client lists topics at KAFKA_BOOTSTRAP_SERVERS, else the error."""
    bootstrap = settings.kafka_bootstrap_servers
    try:
        run_async(lambda: _list_topics(bootstrap), timeout=8)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip() or type(exc).__name__
    return None


def ensure_topics(settings: Settings, say: Callable[[str], None]) -> dict[str, int]:
    """The base topics always; the KAFKA_TOPIC_PREFIX-ed ones too when a prefix is set."""
    from producers.topics import ensure_topics as _ensure

    bootstrap = settings.kafka_bootstrap_servers
    made = run_async(lambda: _ensure(bootstrap, prefix=""), timeout=45)
    if settings.kafka_topic_prefix:
        made |= run_async(lambda: _ensure(bootstrap, prefix=settings.kafka_topic_prefix), timeout=45)
    return made


# --------------------------------------------------------------------------- the service


class Kafka(ManagedService):
    name = NAME
    setting = "KAFKA_BOOTSTRAP_SERVERS"
    port_setting = "KAFKA_BOOTSTRAP_SERVERS"
    server_needle = "kafka.Kafka"
    poll_interval = 0.5
    # SIGTERM: the broker's controlled shutdown (flushes and closes its logs).
    stop_signal = signal.SIGTERM

    def endpoint(self, settings: Settings) -> Endpoint:
        t = target(settings)
        address = f"{t.host}:{t.port}" if t.managed else t.bootstrap
        return Endpoint(t.managed, address, t.port, (("controller", t.controller_port),))

    def signature(self, settings: Settings) -> tuple[str, ...]:
        return ("kafka.Kafka", str(server_properties(settings)))

    def health(self, settings: Settings) -> Health:
        return Health(probe(settings), f"KRaft broker+controller, controller port {target(settings).controller_port}")

    def unreachable_external(self, settings: Settings, error: str) -> str:
        return (
            f"kafka: KAFKA_BOOTSTRAP_SERVERS={target(settings).bootstrap} is not a single loopback broker "
            f"`billing stack up` manages, and it does not answer: {error}. Start that cluster, or unset "
            "KAFKA_BOOTSTRAP_SERVERS."
        )

    def prepare(self, settings: Settings, say: Callable[[str], None]) -> list[str | Path]:
        self.home(settings).mkdir(parents=True, exist_ok=True)
        java, mvn = _ensure_tools(say)
        _ensure_jars(settings, mvn, say)
        _write_config(settings, target(settings))
        _format_storage(settings, java, say)
        return _java_cmd(settings, java, "kafka.Kafka", server_properties(settings))


SERVICE = Kafka()
home = SERVICE.home
log_file = SERVICE.log_file

__all__ = ["SERVICE", "ensure_topics", "home", "libs_dir", "log_file", "probe", "target"]
