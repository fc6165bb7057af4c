"""The closed loop end to end, on loopback: publish digits 1.0.0 with capture on, 200 simulated devices (half see
thickened strokes), monitor flags the shifted cohort and not the control one, consenting devices label their
captured samples, `cycle` retrains and publishes the challenger to beta at 20 %, devices sync again.

Reports accuracy on shifted data (champion vs challenger, in LiteRT), the drifted feature's PSI for both cohorts,
how many devices updated, and the request bytes each device uploaded for its simulated day.

    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/closed_loop.py [--devices 200] [--inferences 20]

Both cohorts sync from the same publish root, each through its own server and telemetry store: the shifted cohort's
store is the one `cycle` monitors; the unshifted cohort's is the control run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL, CHANNEL = "digits", "beta"
RESULTS = Path(__file__).parent / "results" / "closed_loop.json"


class ByteCounter:
    """ASGI middleware: request body bytes and request counts per path (what devices upload)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bytes: dict[str, int] = defaultdict(int)
        self.requests: dict[str, int] = defaultdict(int)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        self.requests[path] += 1

        async def counted() -> Any:
            msg = await receive()
            if msg["type"] == "http.request":
                self.bytes[path] += len(msg.get("body", b""))
            return msg

        return await self.app(scope, counted, send)


def thicken(x: np.ndarray) -> np.ndarray:
    """Strokes thickened: a 3×3 max filter on each 8×8 image (raises mean intensity, unlike a shift)."""
    imgs = x.reshape(len(x), 8, 8)
    padded = np.pad(imgs, ((0, 0), (1, 1), (1, 1)))
    out = np.max([padded[:, i : i + 8, j : j + 8] for i in range(3) for j in range(3)], axis=0)
    return out.reshape(x.shape).astype(np.float32)


def litert_accuracy(model_bytes: bytes, meta_path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from mobile_ml.export import tflite_file
    from mobile_ml.export.metadata import model_input
    from mobile_ml.export.metadata import read as read_metadata

    meta = read_metadata(meta_path)
    interp = tflite_file.load_interpreter(model_bytes, str(meta_path.parent))
    shape = [1, *meta.input.tensor.shape[1:]]
    pred = [int(tflite_file.predict(interp, model_input(meta, r.reshape(shape))).argmax()) for r in x]
    return float(np.mean(np.asarray(pred) == y))


def released_model(root: Path, version: str, tmp: Path) -> tuple[bytes, Path]:
    """The published release's model bytes and metadata.json (as a device downloads them)."""
    release = json.loads((root / MODEL / "releases" / f"{version}.json").read_text())
    files = {f["name"]: (root / f["url"]).read_bytes() for f in release["files"]}
    d = tmp / f"release-{version}"
    d.mkdir(exist_ok=True)
    (d / "metadata.json").write_bytes(files["metadata.json"])
    return files["model.tflite"], d / "metadata.json"


def make_world(tmp: Path, epochs: int) -> tuple[Path, Path]:
    from mobile_ml.contracts.variants import ExportOptions, Variant
    from mobile_ml.data.prepare import prepare
    from mobile_ml.export.exporter import export
    from mobile_ml.train.config import GridConfig, TrainConfig
    from mobile_ml.train.trainer import train

    data = tmp / "data"
    prepare("builtin:digits", data)
    grid = GridConfig(width=(32,), depth=(1,), learning_rate=(0.01,), dropout=(0.0,))
    run = tmp / "run"
    train(data, run, TrainConfig(epochs=epochs, patience=5, batch_size=64, grid=grid, seed=0))
    export(run, ExportOptions(variants=(Variant.FP32,)), data_dir=data)
    return data, run


def simulate(cfgs: list[Any], x: np.ndarray, y: np.ndarray, n: int, consent: set[str], tmp: Path, rng) -> int:
    """Each device: sync (install), ``n`` inferences on its rows (labelled if it consented), sync (upload)."""
    from mobile_ml.client import capture
    from mobile_ml.client import sync as client
    from mobile_ml.client.run import run_inputs

    labelled = 0
    for cfg in cfgs:
        client.sync(replace(cfg, capture_consent=cfg.install_id in consent))
        rows = rng.choice(len(y), n, replace=False)
        npz = tmp / f"in-{cfg.install_id}.npz"
        np.savez(npz, x=x[rows])
        result = run_inputs(cfg.state_dir, npz)
        for p, truth in zip(result.predictions, y[rows], strict=True):
            label = p.labels[int(truth)] if cfg.install_id in consent else None
            ok = capture.offer(cfg.state_dir, values=p.raw_input, version=p.version, prediction=p.top[0][0],
                               confidence=p.top[0][1], label=label)  # fmt: skip
            labelled += bool(ok and label is not None)
        up = client.sync(cfg).aggregates
        if up is None or up.observations != n:
            print(f"{cfg.install_id}: aggregates upload {up}", file=sys.stderr)  # kept for the next sync, or lost
    return labelled


def cycle_config(tmp: Path, run: Path, db: Path) -> Path:
    path = tmp / "cycle.toml"
    path.write_text(
        f"""
[cycle]
run = "{run}"
root = "{tmp / "root"}"
model = "{MODEL}"
channel = "{CHANNEL}"
out = "{tmp / "cycles"}"

[monitor]
db = "{db}"

[capture]
store = "{tmp / "capture"}"
min_labelled = 100000

[publish]
key = "{tmp / "keys"}"
rollout = 20

[retrain]
budget = 1.0

[export]
variants = ["fp32"]
""",
        encoding="utf-8",
    )
    return path


def psi_of(report: Any, feature: str | None = None) -> tuple[str, float | None, bool]:
    """The named feature's PSI (default: the most drifted one) and the report's verdict."""
    feats = report.current.features
    f = (
        max(feats, key=lambda f: f.histogram.psi or 0.0)
        if feature is None
        else next(f for f in feats if f.name == feature)
    )
    return f.name, f.histogram.psi, report.drift


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--inferences", type=int, default=20, help="per device per simulated day")
    ap.add_argument("--consent", type=float, default=0.5, help="fraction of the shifted cohort that labels")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from mobile_ml.client import sync as client
    from mobile_ml.data.spec import load_spec, load_split
    from mobile_ml.deliver.server import create_app
    from mobile_ml.loop import load_cycle_config
    from mobile_ml.loop.cycle import run_cycle
    from mobile_ml.monitor.report import monitor
    from mobile_ml.publish import keys, publisher
    from tests.test_client import serving

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    with TemporaryDirectory() as d:
        tmp = Path(d)
        data, run = make_world(tmp, args.epochs)
        spec = load_spec(data)
        x_train, y_train = load_split(data, spec, "train")
        x_test, y_test = load_split(data, spec, "test")
        keys.generate(tmp / "keys")
        root = tmp / "root"
        publisher.publish(str(root), run, model=MODEL, version="1.0.0", channel=CHANNEL, key=tmp / "keys",
                          capture_rate=1.0, capture_max_per_day=10_000)  # fmt: skip
        db_shift, db_ctrl = tmp / "telemetry-shifted.db", tmp / "telemetry-control.db"
        # every simulated device posts from 127.0.0.1: the per-address rate limit would refuse the fleet (429)
        app_s = ByteCounter(create_app(root, db_shift, capture_store=str(tmp / "capture"), telemetry_rate=0))
        app_c = ByteCounter(create_app(root, db_ctrl, capture_store=str(tmp / "capture-control"), telemetry_rate=0))
        with serving(app_s) as url_s, serving(app_c) as url_c:

            def cfg(i: int, url: str) -> Any:
                return client.DeviceConfig(server=url, model=MODEL, channel=CHANNEL,
                    public_key=keys.load_public(tmp / "keys"), state_dir=tmp / "devices" / f"d{i:04d}",
                    install_id=f"install-{args.seed}-{i:04d}", app_version="1.0.0", timeout=10.0)  # fmt: skip

            half = args.devices // 2
            shifted = [cfg(i, url_s) for i in range(half)]
            normal = [cfg(i, url_c) for i in range(half, args.devices)]
            consent = {c.install_id for c in shifted[: int(half * args.consent)]}
            labelled = simulate(shifted, thicken(x_train), y_train, args.inferences, consent, tmp, rng)
            simulate(normal, x_train, y_train, args.inferences, set(), tmp, rng)
            t_fleet = time.perf_counter()

            rep_s = monitor(str(db_shift), root=str(root), model=MODEL, channel=CHANNEL, version="1.0.0")
            rep_c = monitor(str(db_ctrl), root=str(root), model=MODEL, channel=CHANNEL, version="1.0.0")
            feature, psi_s, drift_s = psi_of(rep_s)
            _, psi_c, drift_c = psi_of(rep_c, feature)
            upload_bytes = {p: app_s.bytes[p] + app_c.bytes[p] for p in set(app_s.bytes) | set(app_c.bytes)}
            upload_requests = {p: app_s.requests[p] + app_c.requests[p] for p in upload_bytes}

            result = run_cycle(load_cycle_config(cycle_config(tmp, run, db_shift)), say=print)
            t_cycle = time.perf_counter()
            new = result.report.version
            updated = sum(client.sync(c).current == new for c in shifted + normal) if new else 0

        xs = thicken(x_test)
        champion = litert_accuracy(*released_model(root, "1.0.0", tmp), xs, y_test)
        challenger = litert_accuracy(*released_model(root, new, tmp), xs, y_test) if new else None
        champion_plain = litert_accuracy(*released_model(root, "1.0.0", tmp), x_test, y_test)
        challenger_plain = litert_accuracy(*released_model(root, new, tmp), x_test, y_test) if new else None

    per_path = {p: round(b / args.devices, 1) for p, b in sorted(upload_bytes.items()) if b}
    out = {
        "devices": args.devices,
        "inferences_per_device_per_day": args.inferences,
        "consenting_devices": len(consent),
        "labelled_samples_queued": labelled,
        "monitor": {
            "feature": feature,
            "psi_shifted": psi_s,
            "drift_shifted": drift_s,
            "psi_control": psi_c,
            "drift_control": drift_c,
            "counted_shifted": rep_s.current.count,  # inferences in the uploaded aggregates
            "counted_control": rep_c.current.count,
        },
        "cycle": {
            "outcome": result.report.outcome.value,
            "trigger": result.report.trigger.value,
            "labelled": result.report.labelled,
            "version": new,
            "rollout": result.report.rollout,
        },  # fmt: skip
        "accuracy_shifted_test": {"champion": champion, "challenger": challenger},
        "accuracy_plain_test": {"champion": champion_plain, "challenger": challenger_plain},
        "test_rows": int(len(y_test)),
        "devices_updated": updated,
        "upload_bytes_per_device_per_day": per_path,
        "upload_bytes_per_device_per_day_total": round(sum(upload_bytes.values()) / args.devices, 1),
        "capture_bytes_per_consenting_device_per_day": round(
            upload_bytes.get("/v1/capture", 0) / max(len(consent), 1), 1
        ),
        "requests": dict(sorted(upload_requests.items())),  # downloads too: GET manifests and blobs
        "seconds": {
            "fleet_and_training": round(t_fleet - t0, 1),
            "cycle": round(t_cycle - t_fleet, 1),
            "total": round(time.perf_counter() - t0, 1),
        },  # fmt: skip
        "seed": args.seed,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print_table(out)
    return out


def print_table(r: dict[str, Any]) -> None:
    m, a = r["monitor"], r["accuracy_shifted_test"]
    ch = "n/a" if a["challenger"] is None else f"{a['challenger']:.3f}"
    rows = [
        ("accuracy on shifted test (champion 1.0.0)", f"{a['champion']:.3f}"),
        (f"accuracy on shifted test (challenger {r['cycle']['version']})", ch),
        (f"PSI {m['feature']} shifted cohort (drift={m['drift_shifted']})", f"{m['psi_shifted']}"),
        (f"PSI {m['feature']} control cohort (drift={m['drift_control']})", f"{m['psi_control']}"),
        (f"devices updated of {r['devices']} (rollout {r['cycle']['rollout']} %)", str(r["devices_updated"])),
        ("upload bytes / device / day (all paths)", str(r["upload_bytes_per_device_per_day_total"])),
        ("capture bytes / consenting device / day", str(r["capture_bytes_per_consenting_device_per_day"])),
        *((f"  {p}", str(b)) for p, b in r["upload_bytes_per_device_per_day"].items()),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")


if __name__ == "__main__":
    main()
