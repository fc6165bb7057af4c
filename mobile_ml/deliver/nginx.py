"""``serve --print-nginx-config``: an nginx ``server`` block that serves a publish root the way devices need it.

nginx serves static files far faster than ``mobile-ml serve`` (issue 16: 77-106k manifest checks/s against 4-5k),
but its defaults are not the protocol's: ``gzip on`` (common in distribution configs) turns a compressed
response's ETag weak, ``autoindex`` lists directories, and it serves any file under ``root``. The block printed here
serves only the paths of ``layout.PATTERNS``, each with the Cache-Control the publisher sets on S3
(``publish.storage.cache_control``), and is tested with ``release check-server`` against a real nginx.
"""

from __future__ import annotations

import re
from pathlib import Path

from mobile_ml.deliver.layout import PATTERNS
from mobile_ml.errors import ConfigError, InputFileError
from mobile_ml.publish.storage import cache_control

_HOST_PORT = re.compile(r"(?:(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):)?(?P<port>[0-9]{1,5})")

HEADER = """\
# mobile-ml update protocol (docs/update-protocol.md): an nginx server block for the publish root
#   {root}
# Put it inside `http {{ }}` (e.g. /etc/nginx/conf.d/mobile-ml.conf) and check the result with
#   mobile-ml release check-server http://{listen}/ --model MODEL --channel CHANNEL
server {{
    listen {listen};
    root {root_quoted};

    autoindex off;            # no directory listings
    gzip off;                 # a gzip-compressed response carries a weak ETag (W/"..."): no 304, no If-Range
    etag on;                  # strong for static files (mtime-size)
    max_ranges 1;             # one range-spec, as devices send; several are ignored (200, the whole file)
    server_tokens off;
    disable_symlinks on from=$document_root;  # no symlink inside the root leads out of it
    default_type application/octet-stream;
    types {{ application/json json; }}
    charset off;
"""


def _listen(value: str) -> str:
    m = _HOST_PORT.fullmatch(value)
    if m is None or not 0 < int(m["port"]) < 65536:
        raise ConfigError(f"--listen {value!r} is not HOST:PORT or PORT", hint="e.g. --listen 127.0.0.1:8080")
    return value


def _quoted(text: str, *, regex: bool = False) -> str:
    """An nginx string: double quotes, with what would end or expand it refused (nginx has no escape for $).
    A location regex keeps its backslashes and braces (nginx passes ``\\.`` and ``\\z`` through to PCRE)."""
    bad = '"$;\n\r' if regex else '"\\$;{}\n\r'
    if any(c in text for c in bad) or not text.isprintable():
        raise ConfigError(
            f"{text!r} cannot be written into an nginx configuration",
            hint="use a path (or upstream) without quotes, backslashes, '$', ';', braces or control characters",
        )
    return f'"{text}"'


def config(root: Path, *, listen: str = "127.0.0.1:8080", telemetry_upstream: str | None = None) -> str:
    """The server block for ``root`` (an existing directory, written as an absolute path)."""
    if not root.is_dir():
        raise InputFileError(f"publish root {root} is not a directory", hint="pass the --root you published to")
    real = str(root.resolve())
    parts = [HEADER.format(root=real, root_quoted=_quoted(real), listen=_listen(listen))]
    if telemetry_upstream is not None:
        parts.append(_telemetry(telemetry_upstream))
    for pattern in PATTERNS:
        # \z, never $: PCRE's $ also matches before a trailing newline (%0A in the URI).
        anchored = _quoted("^/" + pattern + r"\z", regex=True)
        parts.append(
            f"""
    location ~ {anchored} {{
        limit_except GET {{ deny all; }}   # GET and HEAD only
        add_header Cache-Control {_quoted(cache_control(pattern))} always;
        try_files $uri =404;             # a directory at a protocol path is 404, not a listing or a redirect
    }}
"""
        )
    parts.append(
        """
    # Everything else (key pairs, databases, dotfiles, the root itself) is not part of the protocol.
    location / {
        return 404;
    }
}
"""
    )
    return "".join(parts)


def _telemetry(upstream: str) -> str:
    m = re.fullmatch(r"(?:https?://)?(?P<hostport>[^/]+)/?", upstream)
    if m is None or _HOST_PORT.fullmatch(m["hostport"]) is None:
        raise ConfigError(
            f"--telemetry-upstream {upstream!r} is not HOST:PORT", hint="e.g. --telemetry-upstream 127.0.0.1:8000"
        )
    target = upstream if upstream.startswith(("http://", "https://")) else f"http://{upstream}"
    return f"""
    # Device telemetry goes to `mobile-ml serve` (run it with --telemetry-rate 0: behind a proxy every device has
    # the proxy's address, so rate-limit here with limit_req if you need it).
    location = /v1/telemetry {{
        limit_except POST {{ deny all; }}
        client_max_body_size 64k;        # serve refuses more anyway (413)
        proxy_pass {_quoted(target.rstrip("/") + "/v1/telemetry")};
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Authorization $http_authorization;
    }}

    # Device aggregates (counts per baseline bin) go to the same upstream; the install hash travels in a header.
    location = /v1/aggregates {{
        limit_except POST {{ deny all; }}
        client_max_body_size 1m;         # serve refuses more anyway (413)
        proxy_pass {_quoted(target.rstrip("/") + "/v1/aggregates")};
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header Authorization $http_authorization;
        proxy_set_header X-Install-Id-Hash $http_x_install_id_hash;
    }}
"""
