"""Capture batches in object storage: a local directory or ``s3://``, through ``mobile_ml.publish.storage``.

    capture/<model>/batches/<YYYY-MM-DD>/<id>.json     one accepted batch, as validated; <id> is the server's own
                                                       (receipt time + random), never anything the client sent
    capture/<model>/counts/<YYYY-MM-DD>/<key>.json     samples accepted per install that UTC day (key: a hash of the
                                                       client's install hash), the bound of the policy's max_per_day

Every write is create-only or compare-and-swap, so several servers (``--workers``, several hosts on one bucket)
share a store: the count is reserved first (CAS, retried), then the batch is written. A crash between the two
over-counts, which errs on the side of sending less.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone

from mobile_ml.contracts import document_dict, parse_document
from mobile_ml.contracts.capture import CaptureBatch
from mobile_ml.errors import UserError
from mobile_ml.outputs import dumps
from mobile_ml.publish.storage import ConcurrentUpdate, open_root

_TRIES = 8  # compare-and-swap attempts on one install's count before the batch is refused as busy


class OverBudget(UserError):
    """The batch would take the install past the policy's max_per_day."""


class Busy(UserError):
    """The install's count kept changing under us (many parallel posts from one install)."""


class CaptureStore:
    def __init__(self, target: str) -> None:
        self.storage = open_root(target)
        self.url = self.storage.url

    def add(self, batch: CaptureBatch, max_per_day: int, now: datetime | None = None) -> str:
        """Store ``batch`` unless it takes its install past ``max_per_day`` today; returns the batch's id."""
        now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        day = now.strftime("%Y-%m-%d")
        self._reserve(batch, day, max_per_day)
        batch_id = f"{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(8)}"
        self.storage.create(
            f"capture/{batch.model}/batches/{day}/{batch_id}.json", dumps(document_dict(batch)).encode()
        )
        return batch_id

    def _reserve(self, batch: CaptureBatch, day: str, max_per_day: int) -> None:
        key = hashlib.sha256(f"capture-count:{batch.install_id_hash}".encode()).hexdigest()[:32]
        path = f"capture/{batch.model}/counts/{day}/{key}.json"
        for _ in range(_TRIES):
            tag = self.storage.tag(path)
            data = self.storage.read(path) if tag is not None else None
            count = int(json.loads(data)["count"]) if data else 0
            if count + len(batch.samples) > max_per_day:
                raise OverBudget(
                    f"{count} samples from this install today; {len(batch.samples)} more is over the policy's "
                    f"{max_per_day} a day",
                    hint="the device sends the rest tomorrow, or never",
                )
            try:
                self.storage.replace(path, json.dumps({"count": count + len(batch.samples)}).encode(), tag)
                return
            except ConcurrentUpdate:
                continue
        raise Busy("too many capture posts from one install at once", hint="retry later")

    def batches(self, model: str, since: datetime | None = None) -> Iterator[tuple[str, CaptureBatch]]:
        """Every stored batch of ``model`` (received on or after ``since``'s day), oldest first, with its id."""
        first = since.astimezone(timezone.utc).strftime("%Y-%m-%d") if since else ""
        for path in self.storage.list(f"capture/{model}/batches"):
            day = path.split("/")[-2]
            if day < first or not path.endswith(".json"):
                continue
            data = self.storage.read(path)
            if data is not None:
                yield path.rsplit("/", 1)[-1].removesuffix(".json"), parse_document(CaptureBatch, data, where=path)
