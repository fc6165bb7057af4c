"""`release check-server` against real fronts on loopback: `mobile-ml serve`, nginx with the printed configuration,
moto's S3 server, and small fronts that each break one property devices rely on (so every check is seen failing)."""

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mobile_ml.contracts import ContractError, document_dict, parse_document
from mobile_ml.contracts.conformance import Check, CheckResult, ServerCheck
from mobile_ml.deliver.layout import is_protocol_path
from mobile_ml.publish import publisher
from mobile_ml.publish.storage import cache_control
from tests.test_cli import run as cli
from tests.test_publish import key_dir, s3_endpoint, s3_env
from tests.test_serve import _event, running

__all__ = ["key_dir", "s3_endpoint", "s3_env"]  # fixtures, imported so pytest finds them here

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ALL = {c.value for c in Check}


@pytest.fixture(scope="module")
def published(digits_export, key_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("published") / "root"
    publisher.publish(root, digits_export.run, model="digits", version="1.0.0", channel="beta", key=key_dir)
    shutil.copy(key_dir / "private.pem", root / "private.pem")  # a careless operator's key pair in the root
    secret = root.parent / "secret.json"
    secret.write_text('{"secret": true}\n')
    (root / "digits" / "releases" / "9.9.9.json").symlink_to(secret)  # a protocol path that leaves the root
    return root


def check(url, *extra, model="digits", channel="beta"):
    """The CLI's exit code, its report (None unless it got that far) and stderr."""
    r = cli("release", "check-server", url, "--model", model, "--channel", channel, "--timeout", "5", "--json", *extra)
    report = parse_document(ServerCheck, r.stdout, where="stdout") if r.stdout.strip() else None
    return r.exit_code, report, r.stderr


def failed(report):
    return {c.check.value for c in report.failures}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- mobile-ml serve -----------------------------------------------------------------------------------------------


def test_serve_passes_every_check(published, key_dir, tmp_path):
    from mobile_ml.deliver.server import create_app

    with running(create_app(published, tmp_path / "t.db", telemetry_rate=0)) as port:
        code, report, err = check(f"http://127.0.0.1:{port}/", "--public-key", key_dir)
    assert code == 0, err
    assert {c.check.value for c in report.checks} == ALL and report.ok, report.failures


def test_the_table_names_each_check(published, tmp_path):
    from mobile_ml.deliver.server import create_app

    with running(create_app(published, tmp_path / "t.db", telemetry_rate=0)) as port:
        r = cli("release", "check-server", f"http://127.0.0.1:{port}", "--model", "digits", "--channel", "beta")
    assert r.exit_code == 0, r.stderr
    for c in ALL - {"signature"}:  # no --public-key: the signature is fetched, not verified
        assert c in r.stdout
    assert "FAIL" not in r.stdout


# --- nginx ---------------------------------------------------------------------------------------------------------


def _need_nginx():
    if os.path.exists(NGINX):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{NGINX} is missing: .ci/run installs Debian's nginx package")
    pytest.skip("nginx is not installed (apt-get install -y nginx)")


@contextlib.contextmanager
def nginx(server_block: str, port: int, tmp: Path):
    """A real nginx (master + one worker, foreground) serving ``server_block`` from a throwaway prefix."""
    _need_nginx()
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "server.conf").write_text(server_block)
    temps = "\n".join(f"  {k}_temp_path {tmp / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would run as nobody, who cannot read tmp
    (tmp / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'};\n"
        f"events {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n{temps}\n"
        f"  include {tmp / 'server.conf'};\n}}\n"
    )
    cmd = [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert proc.poll() is None, (tmp / "error.log").read_text()
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)


def printed_config(root, port, *extra):
    r = cli("serve", "--print-nginx-config", root, "--listen", f"127.0.0.1:{port}", *extra)
    assert r.exit_code == 0, r.stderr
    return r.stdout


def _req(url, method="GET", path="/", body=None, headers=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r.status, r.read()


def test_nginx_with_the_printed_config_passes(published, key_dir, tmp_path):
    from mobile_ml.deliver.server import create_app

    port = free_port()
    with running(create_app(published, tmp_path / "t.db", telemetry_rate=0)) as upstream:
        block = printed_config(published, port, "--telemetry-upstream", f"127.0.0.1:{upstream}")
        assert block.startswith("# mobile-ml update protocol") and "autoindex off;" in block
        with nginx(block, port, tmp_path / "nginx") as url:
            code, report, err = check(url, "--public-key", key_dir)
            assert code == 0, (err, report and report.failures)
            assert report.ok and {c.check.value for c in report.checks} == ALL
            # only protocol paths: the key pair in the root and the publisher's lock file stay unserved
            assert _req(url, path="/private.pem")[0] == 404
            assert _req(url, path="/digits/channels/.beta.json.lock")[0] == 404
            # a symlink at a protocol path that leads out of the root is not followed (disable_symlinks)
            status, body = _req(url, path="/digits/releases/9.9.9.json")
            assert status in (403, 404) and b"secret" not in body
            # telemetry reaches the `mobile-ml serve` upstream through the proxy location
            event = _event(event="update_check")
            status, body = _req(
                url, "POST", "/v1/telemetry", json.dumps({"events": [event]}), {"Content-Type": "application/json"}
            )
            assert status == 202 and json.loads(body) == {"accepted": 1}, body
            # so do aggregates, install header included: serve answers that this root has no baseline for them
            vectors = os.path.join(os.path.dirname(__file__), "vectors", "aggregates", "tabular.json")
            with open(vectors, encoding="utf-8") as f:
                doc = json.load(f)["merged"]  # a valid document for a model this root does not publish
            headers = {"Content-Type": "application/json", "X-Install-Id-Hash": "ab" * 32}
            status, body = _req(url, "POST", "/v1/aggregates", json.dumps(doc), headers)
            assert status == 404 and b"no release 1.0.0 of model vectors" in body, body


IMMUTABLE_CC = '"public, max-age=31536000, immutable"'
SHORT_CC = '"public, max-age=60, must-revalidate"'


@pytest.mark.parametrize(
    "line, instead, fails",
    [
        # gzip weakens the ETag of every compressed response (nginx 1.7.3+): the JSON manifest's here
        ("    gzip off;", "    gzip on; gzip_types application/json; gzip_min_length 1;", {"strong_etag"}),
        ("    max_ranges 1;", "    max_ranges 0;", {"range", "if_range", "unsatisfiable"}),
        # the fallback location then lists directories and hands out every file, the key pair in the root too
        ("        return 404;", "        autoindex on;", {"no_listing", "inside_root"}),
        (f"Cache-Control {SHORT_CC}", f"Cache-Control {IMMUTABLE_CC}", {"cache_control"}),
    ],
    ids=["gzip-on", "no-ranges", "autoindex", "manifest-immutable"],
)
def test_nginx_without_a_line_of_the_printed_config_fails(published, tmp_path, line, instead, fails):
    port = free_port()
    block = printed_config(published, port)
    assert line in block
    with nginx(block.replace(line, instead), port, tmp_path / "nginx") as url:
        code, report, err = check(url)
    assert code == 3 and failed(report) == fails, report.failures
    assert all(name in err for name in fails)
    if "gzip" in instead:
        assert 'W/"' in report.failures[0].detail


def test_print_nginx_config_bad_input(tmp_path):
    r = cli("serve", "--print-nginx-config", tmp_path / "nope")
    assert r.exit_code == 2 and "not a directory" in r.stderr
    r = cli("serve", "--print-nginx-config", tmp_path, "--listen", "127.0.0.1:http")
    assert r.exit_code == 2 and "--listen" in r.stderr
    odd = tmp_path / "a;b"
    odd.mkdir()
    r = cli("serve", "--print-nginx-config", odd)
    assert r.exit_code == 2 and "cannot be written into an nginx configuration" in r.stderr
    r = cli("serve", "--print-nginx-config", tmp_path, "--telemetry-upstream", "127.0.0.1:8000/x;")
    assert r.exit_code == 2 and "--telemetry-upstream" in r.stderr


# --- S3 (moto) -----------------------------------------------------------------------------------------------------


def test_moto_s3_findings(digits_export, key_dir, s3_env):
    """moto's S3 server, read anonymously like a public bucket: what it gets wrong is reported, check by check."""
    import boto3

    endpoint, bucket = s3_env
    publisher.publish(
        f"s3://{bucket}/prefix", digits_export.run, model="digits", version="1.0.0", channel="beta", key=key_dir
    )
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
        ],
    }
    boto3.client("s3", endpoint_url=endpoint).put_bucket_policy(Bucket=bucket, Policy=json.dumps(public_read))
    code, report, err = check(f"{endpoint}/{bucket}/prefix/", "--public-key", key_dir)
    assert code == 3
    # moto 5.2: If-Range is ignored (a stale validator still gets 206), anonymous HEAD is 403 under the s3:GetObject
    # policy that allows GET (AWS grants HEAD with it too), and the bucket (the root's parent) lists every key
    # to anyone.
    assert failed(report) == {"if_range", "head", "no_listing"}, report.failures
    assert all(name in err for name in ("if_range", "head", "no_listing"))


# --- fronts that each break one property -----------------------------------------------------------------------------


class Front(BaseHTTPRequestHandler):
    """A static server for a publish root that follows the protocol unless one ``fault`` is set."""

    root: Path
    fault: str = ""

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.do_GET(head=True)

    def _file(self):
        rel = urllib.parse.unquote(self.path.split("?")[0]).lstrip("/")
        if self.fault == "traversal":
            return Path(str(self.root) + "/" + rel)  # no normalisation, no protocol-path filter
        if self.fault == "everything":  # a plain static server: paths normalised, but every file under the root
            path = (self.root / rel).resolve()
            return path if self.root.resolve() in path.parents else None
        if self.fault == "listing" and (self.root / rel).is_dir() and ".." not in rel:
            return self.root / rel
        return self.root / rel if is_protocol_path(rel) and (self.root / rel).is_file() else None

    def do_GET(self, head=False):
        path = self._file()
        if path is not None and path.is_dir() and self.fault == "listing":
            return self._send(200, {}, "\n".join(f"<a href='{p.name}'>{p.name}</a>" for p in path.iterdir()).encode())
        if path is None or not path.is_file():
            return self._send(404, {}, b"not found")
        data = path.read_bytes() + (b"!" * 10 if self.fault == "extra_bytes" and "blobs/" in self.path else b"")
        tag = f'"{hashlib.sha256(data).hexdigest()}"'
        rel = str(path.relative_to(self.root)) if self.root in path.parents else ""
        cc = cache_control(rel)
        headers = {
            "ETag": f"W/{tag}" if self.fault == "weak_etag" else tag,
            "Cache-Control": cache_control("blobs/x") if self.fault == "long_manifest_cache" else cc,
        }
        if self.headers.get("If-None-Match") == headers["ETag"]:
            return self._send(304, headers, b"", head=True)
        rng = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        if (
            rng.startswith("bytes=")
            and self.fault != "no_range"
            and (if_range in (None, tag) or self.fault == "stale_if_range")
        ):
            first, _, last = rng[6:].partition("-")
            lo, hi = (len(data) - int(last), len(data) - 1) if not first else (int(first), int(last or len(data) - 1))
            if lo >= len(data):
                return self._send(416, {**headers, "Content-Range": f"bytes */{len(data)}"}, b"")
            hi = min(hi, len(data) - 1)
            headers["Content-Range"] = f"bytes {max(lo, 0)}-{hi}/{len(data)}"
            return self._send(206, headers, data[max(lo, 0) : hi + 1], head=head)
        self._send(200, headers, data, head=head and self.fault != "head_body")

    def _send(self, status, headers, body, head=False):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


@contextlib.contextmanager
def front(root, fault=""):
    handler = type("F", (Front,), {"root": root, "fault": fault})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    "fault, fails",
    [
        ("", set()),  # the control: the front itself follows the protocol
        ("weak_etag", {"strong_etag", "if_range"}),  # a weak validator never matches If-Range strongly
        ("no_range", {"range", "if_range", "unsatisfiable"}),
        ("stale_if_range", {"if_range"}),
        ("listing", {"no_listing"}),
        ("long_manifest_cache", {"cache_control"}),
        ("traversal", {"inside_root"}),
        ("everything", {"inside_root"}),  # the key pair left in the root is served
        ("head_body", {"head"}),
    ],
)
def test_each_check_fails_on_the_front_that_breaks_it(published, fault, fails):
    with front(published, fault) as url:
        code, report, err = check(url)
    assert failed(report) == fails, report.failures
    assert code == (3 if fails else 0)
    for name in fails:
        assert name in err  # exit 3 names each failure


def test_a_swapped_blob_fails_sha256(published, tmp_path):
    copy = tmp_path / "root"
    shutil.copytree(published, copy)
    blob = max((copy / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(blob.read_bytes())
    data[0] ^= 1
    blob.write_bytes(bytes(data))
    with front(copy) as url:
        code, report, _ = check(url)
    # the range checks take a blob that arrived right; the flipped one is named by sha256 alone
    assert code == 3 and failed(report) == {"sha256"}, report.failures


def test_a_blob_over_the_memory_cap_is_hashed_as_it_streams(published, monkeypatch):
    from mobile_ml.deliver import conformance

    sizes = sorted(p.stat().st_size for p in (published / "blobs" / "sha256").iterdir())
    monkeypatch.setattr(conformance, "MAX_BODY", sizes[-1] - 1)  # the largest blob no longer fits in memory
    with front(published) as url:
        code, report, _ = check(url)
    assert code == 0, report.failures
    detail = {c.check.value: c.detail for c in report.checks}
    largest = max((published / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size).name
    assert largest not in detail["range"] and "blobs/sha256/" in detail["range"]  # ranges on the one kept whole
    with front(published, "extra_bytes") as url:  # the large blob arrives with bytes past its signed length
        code, report, _ = check(url)
    assert "sha256" in failed(report) and f"more than its signed {sizes[-1]} bytes" in report.failures[0].detail


def test_a_missing_blob_fails_reachable(published, tmp_path):
    copy = tmp_path / "root"
    shutil.copytree(published, copy)
    min((copy / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size).unlink()
    with front(copy) as url:
        code, report, err = check(url)
    assert code == 3 and "reachable" in failed(report) and "missing blobs/sha256/" in err


def test_a_wrong_key_fails_signature(published, tmp_path):
    from mobile_ml.publish import keys

    keys.generate(tmp_path / "other")
    with front(published) as url:
        code, report, _ = check(url, "--public-key", tmp_path / "other")
    assert code == 3 and failed(report) == {"signature"}


# --- bad input -------------------------------------------------------------------------------------------------------


def test_not_a_publish_root_names_the_first_missing_file(published, tmp_path):
    with front(tmp_path) as url:  # an empty directory
        code, report, err = check(url)
    assert code == 3 and report is None
    assert "not a publish root" in err and "first missing file digits/channels/beta.json (HTTP 404)" in err
    with front(published) as url:  # the right server, a channel that was never published
        code, _, err = check(url, channel="stable")
    assert code == 3 and "digits/channels/stable.json" in err


def test_connection_refused_is_one_line_and_exit_2():
    port = free_port()
    code, report, err = check(f"http://127.0.0.1:{port}/")
    assert code == 2 and report is None
    assert err.splitlines()[0] == f"error: cannot reach 127.0.0.1:{port}: connection refused"


def test_not_an_http_url_or_a_bad_name_is_exit_2():
    code, _, err = check("ftp://127.0.0.1/")
    assert code == 2 and "not an http:// or https:// URL" in err
    code, _, err = check("http://127.0.0.1:9/", model="../etc")
    assert code == 2 and "model name '../etc' is not allowed" in err


# --- the contract ----------------------------------------------------------------------------------------------------


def test_report_round_trips_and_refuses_a_wrong_ok():
    report = ServerCheck(
        url="http://x/", model="digits", channel="beta", checks=(CheckResult(Check.RANGE, False, "ignored"),)
    )
    doc = document_dict(report)
    assert parse_document(ServerCheck, json.dumps(doc), where="r") == report and doc["ok"] is False
    with pytest.raises(ContractError, match="ok"):
        parse_document(ServerCheck, {**doc, "ok": True}, where="r")
    with pytest.raises(ContractError, match="check"):
        parse_document(ServerCheck, {**doc, "checks": [{"check": "vibes", "passed": True, "detail": ""}]}, where="r")
