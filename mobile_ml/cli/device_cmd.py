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
    deadline: Annotated[
        float, typer.Option("--deadline", help="Seconds for the whole check; a slower check fails (network).")
    ] = 120.0,
    min_rate: Annotated[
        float,
        typer.Option("--min-rate", help="Bytes/s a transfer must average over each --rate-window, else it is cut off."),
    ] = 1024.0,
    rate_window: Annotated[float, typer.Option("--rate-window", help="Seconds, for --min-rate.")] = 10.0,
    bundled: Annotated[
        Path | None,
        typer.Option("--bundled", help="The model shipped with the app (bundle.json + files), run when nothing else."),
    ] = None,
    device_model: Annotated[
        str, typer.Option("--device-model", help='Sent with this device\'s telemetry, e.g. "Google Pixel 8".')
    ] = "reference-client",
    no_telemetry: Annotated[bool, typer.Option("--no-telemetry")] = False,
    telemetry_token: Annotated[
        str | None,
        typer.Option(
            "--telemetry-token",
            envvar="MOBILE_ML_TELEMETRY_TOKEN",
            help="The server's --telemetry-token, sent with each telemetry report.",
        ),
    ] = None,
    consent_capture: Annotated[
        bool | None,
        typer.Option(
            "--consent-capture/--revoke-capture",
            help="Record the user's consent to send sampled inputs when the channel's policy asks (revoking deletes "
            "the queue). Default: unchanged (no consent until given).",
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One update check, exactly as the Android updater does it. Exit 0 when the device ends on a verified model
    it chose (installed, up to date, not modified, skipped); exit 3 when an update was rejected or failed (the
    current model stays)."""
    from mobile_ml.client.sync import DeviceConfig
    from mobile_ml.client.sync import sync as run
    from mobile_ml.contracts.state import Outcome
    from mobile_ml.errors import ConfigError, GateError
    from mobile_ml.outputs import dumps
    from mobile_ml.publish.keys import load_public

    if not 0 < len(device_model) <= 128 or not device_model.isprintable():  # the server would refuse every report
        raise ConfigError("--device-model must be 1-128 printable characters", hint='e.g. --device-model "Pixel 8"')
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
            deadline=deadline,
            min_rate=min_rate,
            rate_window=rate_window,
            bundled=bundled,
            send_telemetry=not no_telemetry,
            device_model=device_model,
            telemetry_token=telemetry_token,
            capture_consent=consent_capture,
        )
    )
    if json:
        typer.echo(dumps(result.to_dict()), nl=False)
    else:
        why = f" ({result.reason}: {render.escape(result.detail)})" if result.reason else ""
        running = result.current or (f"the bundled {result.bundled}" if result.bundled else "no model")
        console.out.print(
            f"{result.outcome.value}{why}: running {running}"
            + (f", previous {result.previous}" if result.previous else "")
            + "".join(f"; repaired: {r.value}" for r in result.repairs)
        )
    if result.outcome in (Outcome.REJECTED, Outcome.FAILED):
        raise GateError(
            f"update {result.outcome.value}: {result.reason}", hint="the current model stays; see state.json"
        )


@app.command("run")
def run_model(
    state: Annotated[Path, typer.Option("--state", help="The device's state directory.")],
    input: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="One input or many: .json (nested lists shaped like the model input, or a list of them), .npz "
            "(array x, one row per input) or .csv (raw table columns, encoded as the model's metadata.json says). "
            "Default: the model's own health-check input.",
        ),
    ] = None,
    bundled: Annotated[
        Path | None,
        typer.Option("--bundled", help="The model shipped with the app, run when no downloaded model is whole."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="The right answer for this input (one of the model's labels), for capture."),
    ] = None,
    json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="The prediction as JSON; several inputs: one JSON object per line (JSON Lines), in input order.",
        ),
    ] = False,
) -> None:
    """Run the device's current model on each input with LiteRT and show the top predictions. Each inference is
    counted against the model's monitoring baseline (counts only, in the state directory; no input is kept)."""
    import json as jsonlib  # the --json option shadows the module's name here

    from mobile_ml.client.run import run_inputs
    from mobile_ml.errors import ConfigError
    from mobile_ml.outputs import dumps, to_jsonable

    result = run_inputs(state, input, bundled=bundled)
    several = len(result.predictions) > 1
    if label is not None and several:
        raise ConfigError("--label is the right answer for one input", hint="run one input at a time to label it")
    for p in result.predictions:
        _offer_capture(state, p, label)
        if json:
            doc = p.to_dict()
            typer.echo(jsonlib.dumps(to_jsonable(doc), allow_nan=False) if several else dumps(doc), nl=several)
            continue
        console.out.print(
            f"model {p.version}: "
            + ", ".join(f"{render.escape(lab)} {pr:.3f}" for lab, pr in p.top)
            + f"  ({p.latency_ms:.2f} ms)"
        )
    if result.note:
        console.info(render.escape(result.note))


def _offer_capture(state: Path, p, label: str | None) -> None:
    """Sample this inference into the capture queue (only with consent and a policy that is on: client/capture)."""
    from mobile_ml.client import capture
    from mobile_ml.errors import ConfigError

    if label is not None and label not in p.labels:
        raise ConfigError(f"--label {label!r} is not one of the model's labels", hint=", ".join(p.labels[:20]))
    if p.raw_input is not None and p.top:
        capture.offer(
            state, values=p.raw_input, version=p.version, prediction=p.top[0][0], confidence=p.top[0][1], label=label
        )
