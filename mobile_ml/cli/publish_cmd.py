"""``mobile-ml keys``, ``mobile-ml publish`` and ``mobile-ml release``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render

keys_app = typer.Typer(help="Signing keys (ECDSA P-256).", no_args_is_help=True)
release_app = typer.Typer(
    help="Move a channel: promote, staged rollout, halt, rollback, history, refresh, verify, status.",
    no_args_is_help=True,
)

# Options shared by every command here.
Root = Annotated[str, typer.Option("--root", help="Publish root: a directory or s3://BUCKET/PREFIX.")]
Key = Annotated[Path, typer.Option("--key", "-k", help="Private key (private.pem, or the directory holding it).")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON to stdout.")]
ExpiresDays = Annotated[
    float, typer.Option("--expires-days", help="Days until devices refuse the manifest (1 to 3650).")
]

CaptureRate = Annotated[
    float | None,
    typer.Option(
        "--capture-rate",
        help="Fraction of inferences (0 to 1) consenting devices capture and send; 0: off. Default: keep the "
        "channel's policy (off for a new channel).",
    ),
]
CaptureMaxPerDay = Annotated[
    int, typer.Option("--capture-max-per-day", help="With a capture rate: samples per device and UTC day, at most.")
]


def _show(result, json: bool) -> None:
    from mobile_ml.outputs import dumps

    if json:
        typer.echo(dumps(result.to_dict()), nl=False)
        return
    console.out.print(render.release_summary(result.to_dict()))


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the new key pair.")],
    json: Json = False,
) -> None:
    """Create a signing key pair: private.pem (0600, never overwritten), public.pem, public.b64, key.json."""
    from mobile_ml.outputs import dumps
    from mobile_ml.publish.keys import generate

    info = generate(out)
    if json:
        typer.echo(
            dumps(
                {
                    "key_id": info.key_id,
                    "private": str(info.private_path),
                    "public": str(info.public_path),
                    "public_b64": info.public_b64,
                }
            ),
            nl=False,
        )
        return
    console.out.print(
        f"key id {info.key_id}\n  private  {render.escape(str(info.private_path))} (keep it secret)\n"
        f"  public   {render.escape(str(info.public_path))}, and public.b64 for the app to embed"
    )


@keys_app.command("rotate")
def keys_rotate(
    model: Annotated[str, typer.Option("--model", "-m")],
    old: Annotated[Path, typer.Option("--old", help="The key devices trust now (private.pem or its dir).")],
    new: Annotated[Path, typer.Option("--new", help="The key that signs from now on.")],
    root: Root = "exports",
    json: Json = False,
) -> None:
    """Hand a model's channels over to a new key: the old key signs a statement naming the new one."""
    from mobile_ml.contracts import document_dict
    from mobile_ml.outputs import dumps
    from mobile_ml.publish.rotation import rotate

    doc = rotate(root, model, old_key=old, new_key=new)
    if json:
        typer.echo(dumps(document_dict(doc)), nl=False)
        return
    console.out.print(
        f"{render.escape(model)}: key {doc.old_key_id[:16]}… → {doc.new_key_id[:16]}…; "
        "devices switch on their next check, and refuse the old key after that"
    )


def publish(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="EXPORTDIR|RUNDIR",
            help="An export directory (holding export.json, from a run or a model file), or a run directory "
            "(or quickstart/pipeline output) with exports/.",
        ),
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name in the publish root, e.g. digits.")],
    version: Annotated[str, typer.Option("--version", help="Semantic version of this release, e.g. 1.2.0.")],
    channel: Annotated[str, typer.Option("--channel", "-c", help="Channel, e.g. beta or stable.")],
    key: Key,
    variant: Annotated[
        str | None, typer.Option("--variant", help="Exported variant (default: the recommended one).")
    ] = None,
    rollout: Annotated[
        float, typer.Option("--rollout", help="Percent of devices that get it (staged rollout).")
    ] = 100.0,
    min_app_version: Annotated[
        str, typer.Option("--min-app-version", help="Oldest app version that may load it.")
    ] = "0.0.0",
    root: Root = "exports",
    force: Annotated[
        bool, typer.Option("--force", help="Publish a variant that failed the export's accuracy gate.")
    ] = False,
    expires_days: ExpiresDays = 30.0,
    capture_rate: CaptureRate = None,
    capture_max_per_day: CaptureMaxPerDay = 20,
    json: Json = False,
) -> None:
    """Publish an exported variant: immutable blobs, a release document (with the model's lineage), a signed
    channel manifest."""
    from mobile_ml.publish.publisher import publish as run_publish

    _show(
        run_publish(
            root,
            source,
            model=model,
            version=version,
            channel=channel,
            key=key,
            variant=variant,
            rollout=rollout,
            min_app_version=min_app_version,
            force=force,
            expires_days=expires_days,
            capture_rate=capture_rate,
            capture_max_per_day=capture_max_per_day,
        ),
        json,
    )


@release_app.command("promote")
def promote(
    model: Annotated[str, typer.Argument()],
    source: Annotated[str, typer.Option("--from")],
    target: Annotated[str, typer.Option("--to")],
    rollout: Annotated[float, typer.Option("--rollout")] = 100.0,
    *,
    key: Key,
    root: Root = "exports",
    json: Json = False,
) -> None:
    """Put the release of one channel on another (e.g. --from beta --to stable)."""
    from mobile_ml.publish.publisher import promote as run

    _show(run(root, model, source=source, target=target, key=key, rollout=rollout), json)


@release_app.command("rollout")
def rollout(
    model: Annotated[str, typer.Argument()],
    channel: Annotated[str, typer.Option("--channel", "-c")],
    percent: Annotated[float, typer.Option("--percent")],
    key: Key,
    root: Root = "exports",
    json: Json = False,
) -> None:
    """Change the share of devices that get the channel's release (same salt: devices already in stay in)."""
    from mobile_ml.publish.publisher import set_rollout

    _show(set_rollout(root, model, channel, percent=percent, key=key), json)


@release_app.command("halt")
def halt(
    model: Annotated[str, typer.Argument()],
    channel: Annotated[str, typer.Option("--channel", "-c")],
    key: Key,
    root: Root = "exports",
    json: Json = False,
) -> None:
    """Stop a staged rollout: no more devices adopt the release; devices that have it keep it."""
    from mobile_ml.publish.publisher import halt as run

    _show(run(root, model, channel, key=key), json)


@release_app.command("rollback")
def rollback(
    model: Annotated[str, typer.Argument()],
    channel: Annotated[str, typer.Option("--channel", "-c")],
    key: Key,
    root: Root = "exports",
    json: Json = False,
) -> None:
    """Issue a new, higher manifest that points every device at the previous release."""
    from mobile_ml.publish.publisher import rollback as run

    _show(run(root, model, channel, key=key), json)


@release_app.command("refresh")
def refresh(
    model: Annotated[str, typer.Argument()],
    channel: Annotated[str, typer.Option("--channel", "-c")],
    expires_days: ExpiresDays = 30.0,
    *,
    key: Key,
    root: Root = "exports",
    json: Json = False,
) -> None:
    """Re-sign the current manifest with a new expiry (devices refuse expired manifests)."""
    from mobile_ml.publish.publisher import refresh as run

    _show(run(root, model, channel, key=key, expires_days=expires_days), json)


@release_app.command("capture")
def capture(
    model: Annotated[str, typer.Argument()],
    channel: Annotated[str, typer.Option("--channel", "-c")],
    rate: Annotated[float, typer.Option("--rate", help="Fraction of inferences to capture (0 to 1); 0: off.")],
    max_per_day: Annotated[int, typer.Option("--max-per-day", help="Samples per device and UTC day, at most.")] = 20,
    *,
    key: Key,
    root: Root = "exports",
    json: Json = False,
) -> None:
    """Set the channel's capture policy (signed): consenting devices send sampled inputs to POST /v1/capture."""
    from mobile_ml.publish.publisher import set_capture

    _show(set_capture(root, model, channel, rate=rate, max_per_day=max_per_day, key=key), json)


@release_app.command("history")
def history(
    model: Annotated[str, typer.Argument()],
    channel: Annotated[str, typer.Option("--channel", "-c")],
    public_key: Annotated[Path, typer.Option("--public-key", help="public.pem (or the key directory).")],
    root: Root = "exports",
    json: Json = False,
) -> None:
    """Every manifest the channel has issued, oldest first, with each signature checked."""
    from mobile_ml.outputs import dumps
    from mobile_ml.publish.channel import history as run
    from mobile_ml.publish.keys import load_public
    from mobile_ml.publish.storage import open_root

    entries = run(open_root(root), model, channel, load_public(public_key))
    if json:
        typer.echo(
            dumps(
                {
                    "schema": "mobile_ml.release_history",
                    "schema_version": 1,
                    "model": model,
                    "channel": channel,
                    "entries": entries,
                }
            ),
            nl=False,
        )
        return
    console.out.print(render.history_table(model, channel, entries))


@release_app.command("verify")
def verify(
    root: Root = "exports",
    *,
    public_key: Annotated[Path, typer.Option("--public-key", help="public.pem (or the key directory).")],
    json: Json = False,
) -> None:
    """Check every manifest signature, every blob's hash and length and every reference; exit 3 on any problem."""
    from mobile_ml.outputs import dumps
    from mobile_ml.publish.verify import check, verify_root

    report = verify_root(root, str(public_key))
    if json:
        typer.echo(dumps(report.to_dict()), nl=False)
    else:
        console.out.print(render.verify_summary(report))
    check(report)
