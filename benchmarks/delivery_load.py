"""Delivery under load, on loopback: many devices updating at once against `mobile-ml serve`, and manifest-check
throughput of `mobile-ml serve` (1 and 2 workers) against nginx and against the cheapest app its server stack can run.

    python benchmarks/delivery_load.py [--devices 200] [--seconds 5] [--repeats 3]
    (needs Debian's nginx and wrk: apt-get install -y nginx wrk)

1. Devices: N reference clients (threads, each its own state directory and install id) run `device sync` at once:
   a first install, then a no-change check (304), then, after v1.1.0 is published, an update. Reported per round:
   syncs/s, p50/p99 sync latency, outcomes. Every sync verifies the manifest signature, hashes and health-checks the
   model, so "zero failed verifications" is checked, not assumed.
2. Manifest checks: `wrk` (one load generator for every server: 2 threads, 50 connections, keep-alive) sends the
   device's conditional GET of the channel manifest (If-None-Match with the current ETag → 304) for `--seconds` to
   - "minimal 304": an ASGI app that answers every request with a fixed 304, on serve's own stack (uvicorn with
     uvloop and httptools): the ceiling for any app on that stack;
   - "mobile-ml serve" with 1 and with 2 workers;
   - nginx (one worker process) serving the same publish root.
   Servers take turns, `--repeats` rounds (interleaved, so a noisy neighbour hits them all alike); the table
   quotes the median requests/s of each and ratios of those medians, all from this one run.

Everything (servers, clients, wrk) shares this machine's 2 cores, so figures are relative, not capacity planning.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    types {{ application/json json; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ try_files $uri =404; }}
    }}
}}
"""


async def minimal_304(scope, receive, send) -> None:
    """The cheapest HTTP answer an ASGI app can give: a fixed 304 with the manifest's kind of ETag."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", b'"' + b"0" * 64 + b'"')]})
    await send({"type": "http.response.body", "body": b""})


def run_minimal(port: int) -> None:
    import uvicorn

    # serve's stack exactly (see mobile_ml.deliver.server.build_server), minus the app
    uvicorn.run(
        minimal_304,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        server_header=False,
        ws="none",
    )


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(url: str) -> None:
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return  # it answers (the minimal app answers everything with 304)
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def build_root(tmp: Path):
    from mobile_ml.export.options import ExportOptions
    from mobile_ml.pipeline import QUICKSTART, run_pipeline
    from mobile_ml.publish import keys, publisher
    from mobile_ml.train.config import TrainConfig

    cfg = replace(
        QUICKSTART,
        train=replace(TrainConfig(), epochs=8, grid=replace(TrainConfig().grid, width=(16,))),
        export=ExportOptions(variants=("fp32", "int8")),
    )
    run_pipeline(cfg, tmp / "qs")
    keys.generate(tmp / "keys")
    publisher.publish(
        str(tmp / "root"),
        tmp / "qs",
        model="digits",
        version="1.0.0",
        channel="stable",
        key=tmp / "keys",
        variant="int8",
    )
    return tmp / "root", tmp / "keys"


def device_round(url: str, key, tmp: Path, n: int, label: str) -> dict:
    from mobile_ml.client import sync as client

    def one(i: int):
        cfg = client.DeviceConfig(
            server=url,
            model="digits",
            channel="stable",
            public_key=key,
            state_dir=tmp / "devices" / f"d{i}",
            install_id=f"device-{i}",
            app_version="1.0.0",
            timeout=30.0,
            send_telemetry=True,
        )
        t0 = time.perf_counter()
        r = client.sync(cfg)
        return r.outcome, time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    lat = sorted(r[1] * 1000 for r in results)
    outcomes: dict[str, int] = {}
    for o, _ in results:
        outcomes[o] = outcomes.get(o, 0) + 1
    row = {
        "round": label,
        "devices": n,
        "wall_s": round(wall, 2),
        "syncs_per_s": round(n / wall, 1),
        "p50_ms": round(statistics.median(lat), 1),
        "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
        "outcomes": outcomes,
    }
    print(f"  {label}: {row}", file=sys.stderr)
    return row


def wrk(url: str, etag: str, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t2", "-c50", f"-d{seconds}s", "--latency", "-H", f"If-None-Match: {etag}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    pct = {k: v for k, v in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": rps,
        "p50": pct.get("50"),
        "p99": pct.get("99"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def current_etag(url: str) -> str:
    try:
        headers = urllib.request.urlopen(url).headers
    except urllib.error.HTTPError as e:  # the minimal app's 304
        headers = e.headers
    return headers["ETag"]


def start_servers(tmp: Path, root: Path) -> tuple[dict[str, str], list[subprocess.Popen]]:
    """Every server under test on its own loopback port: name → base URL, and the processes to stop."""
    ports = {name: free_port() for name in SERVERS}
    procs = [
        subprocess.Popen([sys.executable, __file__, "--minimal-server", str(ports["minimal 304"])]),
    ]
    for name, workers in (("mobile-ml serve, 1 worker", 1), ("mobile-ml serve, 2 workers", 2)):
        cmd = [sys.executable, "-m", "mobile_ml", "serve", str(root), "--port", str(ports[name])]
        cmd += ["--telemetry-db", str(tmp / f"telemetry-{workers}.db"), "--workers", str(workers)]
        procs.append(subprocess.Popen(cmd, stderr=subprocess.DEVNULL))
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=ports["nginx"], root=root))
    procs.append(
        subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    )
    return {name: f"http://127.0.0.1:{port}/" for name, port in ports.items()}, procs


SERVERS = ("minimal 304", "mobile-ml serve, 1 worker", "mobile-ml serve, 2 workers", "nginx")


def manifest_checks(servers: dict[str, str], seconds: int, repeats: int) -> dict[str, dict]:
    """wrk against each server in turn, ``repeats`` rounds; per server the median run (by requests/s) and all."""
    manifest = "digits/channels/stable.json"
    runs: dict[str, list[dict]] = {name: [] for name in servers}
    for r in range(repeats):
        for name, base in servers.items():
            etag = current_etag(base + manifest)
            result = wrk(base + manifest, etag, seconds)
            runs[name].append(result)
            print(f"  round {r + 1}, {name}: {result}", file=sys.stderr)
    out = {}
    for name, rs in runs.items():
        median = statistics.median(x["requests_per_s"] for x in rs)
        out[name] = {"requests_per_s": round(median, 1), "runs": rs}
    return out


def ratios(checks: dict[str, dict]) -> dict[str, float]:
    rps = {name: c["requests_per_s"] for name, c in checks.items()}
    out = {}
    for serve in ("mobile-ml serve, 1 worker", "mobile-ml serve, 2 workers"):
        out[f"{serve} / minimal 304"] = round(rps[serve] / rps["minimal 304"], 3)
        out[f"{serve} / nginx"] = round(rps[serve] / rps["nginx"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--minimal-server", type=int, help=argparse.SUPPRESS)  # internal: run minimal_304 on this port
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "delivery_load.json")
    args = ap.parse_args()
    if args.minimal_server:
        run_minimal(args.minimal_server)
        return
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install -y nginx wrk")
    from mobile_ml.publish import keys, publisher

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # nginx's workers run as an unprivileged user and must be able to read the root
        print("building a publish root (quick training + export) ...", file=sys.stderr)
        root, key_dir = build_root(tmp)
        servers, procs = start_servers(tmp, root)
        try:
            for base in servers.values():
                wait_http(base + "digits/channels/stable.json")
            serve_url = servers["mobile-ml serve, 1 worker"]
            key = keys.load_public(key_dir)
            print(f"{args.devices} devices against mobile-ml serve ...", file=sys.stderr)
            rounds = [
                device_round(serve_url, key, tmp, args.devices, "first install"),
                device_round(serve_url, key, tmp, args.devices, "no change (304)"),
            ]
            publisher.publish(
                str(root), tmp / "qs", model="digits", version="1.1.0", channel="stable", key=key_dir, variant="fp32"
            )
            rounds.append(device_round(serve_url, key, tmp, args.devices, "update to 1.1.0"))
            checks = manifest_checks(servers, args.seconds, args.repeats)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(20)
    failed = sum(n for r in rounds for o, n in r["outcomes"].items() if o in ("rejected", "failed"))
    out = {
        "schema": "mobile_ml.bench.delivery_load",
        "schema_version": 2,
        "date": time.strftime("%Y-%m-%d"),
        "devices": args.devices,
        "rounds": rounds,
        "failed_verifications": failed,
        "wrk": f"-t2 -c50 -d{args.seconds}s, If-None-Match → 304, {args.repeats} interleaved repeats, medians",
        "manifest_checks": checks,
        "ratios": ratios(checks),
        "serve_over_nginx": ratios(checks)["mobile-ml serve, 1 worker / nginx"],  # schema 1's one figure
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    print("\n| server | requests/s (median) |\n|---|---:|")  # stdout: TensorFlow's set-up may have muted stderr
    for name, c in checks.items():
        print(f"| {name} | {c['requests_per_s']:,.0f} |")
    for name, value in out["ratios"].items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
