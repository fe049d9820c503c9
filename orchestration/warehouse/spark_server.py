"""A local Spark Thrift server (HiveThriftServer2) that owns the Spark warehouse dir and metastore.

dbt (`method: thrift`) and the Python assets (PyHive) both reach this one long-lived server, so only
one JVM ever opens the embedded Derby metastore. Settings come from the CDP_SPARK_* variables the dbt
profile reads. When CDP_SPARK_HOST names another machine (a cluster's server), nothing is started.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

THRIFT_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
READY_TIMEOUT_SECONDS = 240.0


class SparkServerError(RuntimeError):
    """The local Spark Thrift server could not be started or reached (message has the log tail)."""


def _absolute(value: str) -> Path:
    from orchestration.settings import PROJECT_DIR

    path = Path(value).expanduser()
    return (path if path.is_absolute() else PROJECT_DIR / path).resolve()


@dataclass(frozen=True)
class SparkServerSettings:
    """Where the server listens and how the local one is started (CDP_SPARK_* variables)."""

    host: str
    port: int
    warehouse: Path
    master: str
    driver_memory: str
    shuffle_partitions: str
    user: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SparkServerSettings":
        env = os.environ if environ is None else environ
        return cls(host=env.get("CDP_SPARK_HOST", "localhost"),
                   port=int(env.get("CDP_SPARK_PORT", "10000")),
                   warehouse=_absolute(env.get("CDP_SPARK_WAREHOUSE", "data/spark-warehouse")),
                   master=env.get("CDP_SPARK_MASTER", "local[2]"),
                   driver_memory=env.get("CDP_SPARK_DRIVER_MEMORY", "3g"),
                   shuffle_partitions=env.get("CDP_SPARK_SHUFFLE_PARTITIONS", "4"),
                   user=env.get("CDP_SPARK_USER", "cdp"))

    @property
    def is_local(self) -> bool:
        return self.host in LOCAL_HOSTS

    @property
    def connect_host(self) -> str:
        return "localhost" if self.host in ("", "::1") else self.host

    @property
    def run_dir(self) -> Path:
        """Logs, pid file and lock of the local server, inside the warehouse dir."""
        return self.warehouse / "_thrift"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "server.log"


def spark_submit() -> Path:
    """The spark-submit script of the installed pyspark wheel."""
    import pyspark

    script = Path(pyspark.__file__).resolve().parent / "bin" / "spark-submit"
    if not script.exists():
        raise SparkServerError(f"spark: no spark-submit in the pyspark package ({script})")
    return script


def server_command(settings: SparkServerSettings) -> list[str]:
    """The spark-submit command line of a local Thrift server for these settings."""
    warehouse = settings.warehouse
    metastore = warehouse / "_metastore"
    run = settings.run_dir
    java_options = (f"-Dderby.system.home={metastore} "
                    f"-Dderby.stream.error.file={metastore}/derby.log")
    confs = {
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.shuffle.partitions": settings.shuffle_partitions,
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": java_options,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    command = [str(spark_submit()), "--class", THRIFT_CLASS, "--name", "cdp-thrift-server",
               "--master", settings.master, "--driver-memory", settings.driver_memory]
    for key, value in confs.items():
        command += ["--conf", f"{key}={value}"]
    command += ["--hiveconf", f"hive.server2.thrift.port={settings.port}",
                "--hiveconf", "hive.server2.thrift.bind.host=localhost",
                "--hiveconf", "hive.server2.authentication=NONE",
                # operation logs and Hive scratch space with the server's other files, not /tmp
                "--hiveconf", f"hive.server2.logging.operation.log.location={run / 'operation_logs'}",
                "--hiveconf", f"hive.exec.scratchdir={run / 'scratch'}",
                "--hiveconf", f"hive.exec.local.scratchdir={run / 'local_scratch'}",
                "spark-internal"]
    return command


def _read_pid(settings: SparkServerSettings) -> int | None:
    try:
        return int(settings.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process is not a server
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def port_open(settings: SparkServerSettings, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((settings.connect_host, settings.port), timeout=timeout):
            return True
    except OSError:
        return False


def answers_query(settings: SparkServerSettings) -> bool:
    """Whether a PyHive session on the server can run `select 1`."""
    if not port_open(settings):
        return False
    from pyhive import hive

    try:
        conn = hive.connect(host=settings.connect_host, port=settings.port, username=settings.user)
        try:
            cursor = conn.cursor()
            cursor.execute("select 1")
            return cursor.fetchall() == [(1,)]
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 (any failure means: not ready yet)
        return False


def log_tail(settings: SparkServerSettings, lines: int = 40) -> str:
    try:
        return "\n".join(settings.log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def _start_lock(settings: SparkServerSettings) -> Iterator[None]:
    """One starter at a time per warehouse dir (dbt and an asset may call ensure_running at once)."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    with (settings.run_dir / "start.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _launch(settings: SparkServerSettings) -> int:
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    (settings.warehouse / "_metastore").mkdir(exist_ok=True)
    for scratch in ("operation_logs", "scratch", "local_scratch"):
        (settings.run_dir / scratch).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_LOG_DIR": str(settings.run_dir),
           "PYSPARK_PYTHON": sys.executable}
    with settings.log_file.open("ab") as log:
        process = subprocess.Popen(server_command(settings), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=settings.run_dir, env=env,
                                   start_new_session=True)
    settings.pid_file.write_text(str(process.pid))
    return process.pid


def _wait_ready(settings: SparkServerSettings, pid: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers_query(settings):
            return
        if pid is not None and not _alive(pid):
            raise SparkServerError(f"spark: the Thrift server for {settings.warehouse} on port "
                                   f"{settings.port} died while starting; log "
                                   f"{settings.log_file}:\n{log_tail(settings)}")
        time.sleep(1.0)
    raise SparkServerError(f"spark: the Thrift server on port {settings.port} did not answer within "
                           f"{timeout:.0f}s; log {settings.log_file}:\n{log_tail(settings)}")


def ensure_running(settings: SparkServerSettings | None = None,
                   timeout: float = READY_TIMEOUT_SECONDS) -> SparkServerSettings:
    """Make sure a server answers at CDP_SPARK_HOST:CDP_SPARK_PORT; start the local one if needed.

    Idempotent: a live server (this warehouse's, or any answering the port) is reused. A remote
    CDP_SPARK_HOST is only checked, never started."""
    settings = settings or SparkServerSettings.from_env()
    if not settings.is_local:
        if not port_open(settings, timeout=5.0):
            raise SparkServerError(f"spark: no Thrift server answers at {settings.host}:"
                                   f"{settings.port} (CDP_SPARK_HOST is remote: nothing is started)")
        return settings
    if answers_query(settings):
        return settings
    with _start_lock(settings):
        pid = _read_pid(settings)
        if not _alive(pid):
            if port_open(settings):
                raise SparkServerError(f"spark: port {settings.port} is taken by another process "
                                       f"that is not a Thrift server; set CDP_SPARK_PORT")
            pid = _launch(settings)
        _wait_ready(settings, pid, timeout)
    return settings


def stop(settings: SparkServerSettings | None = None, timeout: float = 30.0) -> bool:
    """Stop the local server of this warehouse dir; False when none was running."""
    settings = settings or SparkServerSettings.from_env()
    pid = _read_pid(settings)
    if not _alive(pid):
        settings.pid_file.unlink(missing_ok=True)
        return False
    assert pid is not None
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    settings.pid_file.unlink(missing_ok=True)
    return True


def status(settings: SparkServerSettings | None = None) -> str:
    """One line: where the server is and whether it answers."""
    settings = settings or SparkServerSettings.from_env()
    where = f"{settings.connect_host}:{settings.port}"
    if not settings.is_local:
        return f"remote {where}: {'reachable' if port_open(settings) else 'not reachable'}"
    pid = _read_pid(settings)
    state = "answering" if answers_query(settings) else "not answering"
    running = f"pid {pid}" if _alive(pid) else "not running"
    return f"local {where} ({settings.warehouse}): {running}, {state}"


def main(argv: list[str]) -> int:
    """`python -m orchestration.warehouse.spark_server start|stop|status`."""
    if len(argv) != 1 or argv[0] not in ("start", "stop", "status"):
        print("usage: spark_server start|stop|status", file=sys.stderr)
        return 2
    if argv[0] == "start":
        ensure_running()
    elif argv[0] == "stop":
        stop()
    print(status())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
