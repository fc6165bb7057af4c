"""``mobile-ml device sync`` and ``mobile-ml device run``: the reference client from a shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render

app = typer.Typer(help="The reference device client: check for updates, run the current model.", no_args_is_help=True)


@app.command("sync")
def sync(
    server: Annotated[str, typer.Option("--server", help="Base URL of the publish root, e.g. http://127.0.0.1:8000/.")],
    model: Annotated[str, typer.Option("--model", "-m")],
    channel: Annotated[str, typer.Option("--channel", "-c")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The pinned public key (public.pem or public.b64).")],
    state: Annotated[Path, typer.Option("--state", help="The device's state directory.")],
    install_id: Annotated[
        str, typer.Option("--install-id", help="This install's id (only its hash leaves the device).")
    ],
    app_version: Annotated[str, typer.Option("--app-version")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per connection and read.")] = 10.0,
    no_telemetry: Annotated[bool, typer.Option("--no-telemetry")] = False,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One update check, exactly as the Android updater does it. Exit 0 when the device ends on a verified model
    it chose (installed, up to date, not modified, skipped); exit 3 when an update was rejected or failed (the
    current model stays)."""
    from mobile_ml.client.sync import DeviceConfig
    from mobile_ml.client.sync import sync as run
    from mobile_ml.errors import GateError
    from mobile_ml.outputs import dumps
    from mobile_ml.publish.keys import load_public

    result = run(
        DeviceConfig(
            server=server,
            model=model,
            channel=channel,
            public_key=load_public(public_key),
            state_dir=state,
            install_id=install_id,
            app_version=app_version,
            timeout=timeout,
            send_telemetry=not no_telemetry,
        )
    )
    if json:
        typer.echo(dumps(result.to_dict()), nl=False)
    else:
        why = f" ({result.reason}: {render.escape(result.detail)})" if result.reason else ""
        console.out.print(
            f"{result.outcome}{why}: running {result.current or 'no model'}"
            + (f", previous {result.previous}" if result.previous else "")
        )
    if result.outcome in ("rejected", "failed"):
        raise GateError(f"update {result.outcome}: {result.reason}", hint="the current model stays; see state.json")


@app.command("run")
def run_model(
    state: Annotated[Path, typer.Option("--state", help="The device's state directory.")],
    input: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="JSON file: one input as nested lists of numbers (default: the model's own health-check input).",
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the device's current model on one input with LiteRT and show the top predictions."""
    import json as jsonlib
    import time

    import numpy as np

    from mobile_ml.client.sync import current_model
    from mobile_ml.errors import InputFileError
    from mobile_ml.export import tflite_file
    from mobile_ml.outputs import dumps

    found = current_model(state)
    if found is None:
        raise InputFileError(f"{state} has no current model", hint="run `mobile-ml device sync` first")
    vdir, meta = found
    try:
        x = np.asarray(jsonlib.loads(input.read_text()) if input else meta["health_check"]["input"], np.float32)
    except (OSError, ValueError) as e:
        raise InputFileError(f"cannot read input {input}: {e}", hint="a JSON array shaped like the model input") from e
    shape = meta["input"]["tensor"]["shape"][1:]
    if x.size != int(np.prod(shape)):
        raise InputFileError(
            f"input has {x.size} values; the model takes {int(np.prod(shape))} ({shape})",
            hint="see input in the model's metadata.json",
        )
    interpreter = tflite_file.load_interpreter((vdir / "model.tflite").read_bytes(), str(vdir / "model.tflite"))
    t0 = time.perf_counter()
    probs = tflite_file.predict(interpreter, x.reshape([1, *shape]))[0]
    ms = (time.perf_counter() - t0) * 1e3
    top = [(meta["labels"][i], float(probs[i])) for i in np.argsort(-probs)[:3]]
    if json:
        typer.echo(
            dumps(
                {"version": vdir.name, "top": [{"label": lab, "probability": p} for lab, p in top], "latency_ms": ms}
            ),
            nl=False,
        )
        return
    console.out.print(
        f"model {vdir.name}: " + ", ".join(f"{render.escape(lab)} {p:.3f}" for lab, p in top) + f"  ({ms:.2f} ms)"
    )
