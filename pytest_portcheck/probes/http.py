"""HTTP, and the HTTP APIs that expose data or control: Elasticsearch, etcd, Docker Engine, Kubernetes,
Prometheus exporters and CouchDB.

Two probes: ``GET /`` (the Server header; Elasticsearch, CouchDB and exporters name themselves in the
body) and ``GET /version`` (etcd, Docker and Kubernetes answer it with JSON naming product and version).
Both are reads of public metadata, never a login.

Authentication is told only where an answer proves it, else ``auth`` stays None ("cannot tell"): 401
with the API's own marks is "required" (no identity without credentials); a request without
credentials that gets data or an identity is "none". A 403 proves neither: the request was given an
identity (an anonymous user) that may not do *this*, and may well do something else. So an API that
answers 403, or whose answering path is public by design, gets a further question (``Refinement``):
Elasticsearch its identity endpoint, Kubernetes its discovery paths, etcd a count-only range read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe, Refinement
from pytest_portcheck.probes.ssh import first_line

_HEADER = re.compile(rb"^([A-Za-z0-9-]+):[ \t]*(.*?)\r?$", re.MULTILINE)
_STATUS = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})")
_PRODUCT_VERSION = re.compile(r"^([A-Za-z][\w.-]*?)(?:/([\w.-]+))?(?:\s|$)")


def request(path: str) -> Callable[[str], bytes]:
    def build(host: str) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portcheck\r\nAccept: */*\r\n"
            "Connection: close\r\n\r\n"
        ).encode()

    return build


def response_complete(data: bytes) -> bool:
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return False
    length = headers(head).get("content-length", "")
    return length.isdigit() and len(body) >= int(length)


def headers(head: bytes) -> dict[str, str]:
    return {name.decode().lower(): neutralise(value, 120) for name, value in _HEADER.findall(head)}


def _json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _text(value: object) -> str | None:
    return neutralise(str(value), 40) if isinstance(value, (str, int, float)) else None


def parse(data: bytes) -> tuple[int, dict[str, str], bytes] | None:
    match = _STATUS.match(data)
    if match is None:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return int(match.group(1)), headers(head), body


def server_product(fields: dict[str, str]) -> tuple[str | None, str | None]:
    server = fields.get("server")
    if not server:
        return None, None
    match = _PRODUCT_VERSION.match(server)
    return (match.group(1), match.group(2)) if match else (server, None)


def _api_from_root(status: int, fields: dict[str, str], body: bytes, line: str) -> ServiceInfo | None:
    document = _json(body)
    if (
        fields.get("x-elastic-product") == "Elasticsearch"
        or document.get("tagline") == "You Know, for Search"
    ):
        version = document.get("version", {})
        number = _text(version.get("number")) if isinstance(version, dict) else None
        # A 200 served an anonymous request. A 401 or 403 may come from an anonymous user that lacks
        # the privilege for GET / (with ``authz_exception: false`` it is told 401): the identity
        # endpoint decides those.
        auth = "none" if status == 200 else None
        note = _ES_REFUSED.format(status) if status in (401, 403) else None
        return ServiceInfo("elasticsearch", line, "Elasticsearch", number, auth=auth, auth_note=note)
    if document.get("couchdb") == "Welcome":
        return ServiceInfo("couchdb", line, "CouchDB", _text(document.get("version")))
    paths = document.get("paths")
    if status == 200 and isinstance(paths, list) and "/api" in paths and "/version" in paths:
        # kube-apiserver's root, served only where discovery is open: its discovery paths decide
        return ServiceInfo("kubernetes", line, "Kubernetes", auth_note="GET / lists the API's paths")
    if b"# HELP " in body[:2048] or (b"/metrics" in body and b"xporter" in body):
        title = re.search(rb"<title>([^<]{1,60})</title>", body)
        return ServiceInfo("prometheus", line, neutralise(title.group(1), 60) if title else "exporter")
    return None


def classify_root(data: bytes) -> ServiceInfo | None:
    parsed = parse(data)
    if parsed is None:
        return None
    status, fields, body = parsed
    line = neutralise(first_line(data))
    api = _api_from_root(status, fields, body, line)
    if api is not None:
        return api
    return ServiceInfo("http", line, *server_product(fields))


def classify_version(data: bytes) -> ServiceInfo | None:
    """``GET /version``: only an API that names itself counts; anything else is left to ``GET /``."""
    parsed = parse(data)
    if parsed is None:
        return None
    status, fields, body = parsed
    line = neutralise(first_line(data))
    document = _json(body)
    if "etcdserver" in document:
        return ServiceInfo("etcd", line, "etcd", _text(document.get("etcdserver")))
    platform = document.get("Platform")
    if "ApiVersion" in document or "api-version" in fields or "docker" in fields.get("server", "").lower():
        name = platform.get("Name") if isinstance(platform, dict) else None
        # Docker Engine has no login of its own: a 403 is an authorization plugin's refusal of this
        # request, which says nothing of what else an unauthenticated client may do.
        auth = "none" if status == 200 else "required" if status == 401 else None
        note = (
            f"403 from an authorization plugin: {_message(document) or 'refused'}" if status == 403 else None
        )
        return ServiceInfo(
            "docker", line, _text(name) or "Docker Engine", _text(document.get("Version")), auth=auth,
            auth_note=note,
        )  # fmt: skip
    if "gitVersion" in document and "major" in document:  # public by design: the discovery paths decide
        version = _text(document.get("gitVersion"))
        return ServiceInfo("kubernetes", line, "Kubernetes", version, auth_note="/version answers anyone")
    if _kubernetes_status(document) and status == 401:
        return ServiceInfo("kubernetes", line, "Kubernetes", auth="required")
    if _kubernetes_status(document) and status == 403:
        return ServiceInfo("kubernetes", line, "Kubernetes", auth_note=_kubernetes_refusal(document))
    return None


def _message(document: dict[str, Any], limit: int = 120) -> str | None:
    message = document.get("message")
    return neutralise(message, limit) if isinstance(message, str) and message else None


_ES_REFUSED = "GET / refused with {}, and the identity endpoint did not say who anonymous requests are"


def elasticsearch_identity(info: ServiceInfo, data: bytes) -> ServiceInfo:
    """``GET /_security/_authenticate`` without credentials (it needs no privilege): who Elasticsearch
    takes us for. 200 names the identity every anonymous request gets (the anonymous user is on:
    "none", whatever it may read); 401 means no identity without credentials: "required". Anything
    else (security off, where GET / answered 200; a proxy's refusal) leaves GET /'s reading."""
    parsed = parse(data)
    if parsed is None:
        return info
    status, _, body = parsed
    user = _json(body).get("username") if status == 200 else None
    if isinstance(user, str):
        note = f'anonymous requests act as user "{neutralise(user, 60)}"'
        return replace(info, auth="none", auth_note=note)
    if status == 401 and info.auth != "none":  # never over a 200 that already served us
        return replace(info, auth="required", auth_note=None)
    return info


def _kubernetes_status(document: dict[str, Any]) -> bool:
    return document.get("kind") == "Status" and document.get("apiVersion") == "v1"


_ANONYMOUS = 'User "system:anonymous"'


def _kubernetes_refusal(document: dict[str, Any]) -> str:
    message = _message(document) or "forbidden"
    if _ANONYMOUS not in message:
        return f"403: {message}"
    # Anonymous requests are authenticated (as system:anonymous) and then authorised per path: a
    # refusal here shows this path is closed to them, not that every other one is.
    return (
        "anonymous requests are accepted as system:anonymous but refused beyond public paths such as "
        "/version: whether they reach any resource cannot be told (--anonymous-auth=false answers 401)"
    )


def kubernetes_discovery(path: str, kind: str) -> Refinement:
    """``GET /api`` (or ``/apis``) without credentials, on a Kubernetes API whose answer so far was a
    public path or a 403: 401 is "required", the discovery document ("APIVersions", "APIGroupList") is
    "none" (anonymous requests read the API), a 403 Status leaves it untold."""

    def update(info: ServiceInfo, data: bytes) -> ServiceInfo:
        parsed = parse(data)
        if parsed is None:
            return info
        status, _, body = parsed
        document = _json(body)
        if status == 401 and _kubernetes_status(document):
            return replace(info, auth="required", auth_note=None)
        if status == 200 and document.get("kind") == kind:
            return replace(info, auth="none", auth_note=f"anonymous requests may read {path}")
        if status == 403 and _kubernetes_status(document):
            return replace(info, auth_note=_kubernetes_refusal(document))
        return info

    return Refinement(
        request(path), update, lambda info: info.service == "kubernetes" and info.auth is None,
        response_complete,
    )  # fmt: skip


def etcd_auth(info: ServiceInfo, data: bytes) -> ServiceInfo:
    """A key-range read of nothing (count only, an empty key) without a token: refused when auth is on."""
    parsed = parse(data)
    if parsed is None:
        return info
    status, _, body = parsed
    document = _json(body)
    # Without a token etcd says who is missing; a bare 403 (a proxy's) proves nothing either way.
    refused = status == 401 or "user name is empty" in str(document.get("error", ""))
    auth = "required" if refused else "none" if status == 200 and "header" in document else info.auth
    return replace(info, auth=auth)


def etcd_range_request(host: str) -> bytes:
    body = b'{"key": "AA==", "count_only": true}'
    return (
        f"POST /v3/kv/range HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portcheck\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _plain_on_tls(info: ServiceInfo) -> bool:
    return info.evidence.split(" ", 2)[1:2] == ["400"]


ELASTICSEARCH_IDENTITY = Refinement(
    request("/_security/_authenticate"), elasticsearch_identity, lambda info: info.service == "elasticsearch",
    response_complete,
)  # fmt: skip
ETCD_RANGE = Refinement(etcd_range_request, etcd_auth, lambda info: info.service == "etcd", response_complete)
KUBERNETES_DISCOVERY = (
    kubernetes_discovery("/api", "APIVersions"),
    kubernetes_discovery("/apis", "APIGroupList"),
)
API_CHECKS = (ELASTICSEARCH_IDENTITY, ETCD_RANGE, *KUBERNETES_DISCOVERY)
"""Every HTTP API's further questions: what runs inside TLS may be any of them."""

# Ranks: /version (10) names an API at once unless it got a 400, then it waits for TLS (20), as does
# / on a 400; any other answer to / waits only for /version, which may name an API behind it.
HTTP_PORTS = frozenset({80, 8000, 8008, 8080, 8081, 8888, 9090, 9100, 9200, 5984, 2375, 2379, 8500})
ROOT = ProtocolProbe(
    "http", classify_root, HTTP_PORTS, request("/"), response_complete, rarity=1, rank=30,
    rank_of=lambda info: 30 if _plain_on_tls(info) else 15,
    refine=(ELASTICSEARCH_IDENTITY, *KUBERNETES_DISCOVERY),
)  # fmt: skip
VERSION = ProtocolProbe(
    "http-version", classify_version, frozenset({2375, 2379, 6443, 8001}), request("/version"),
    response_complete, rarity=3, rank=10, rank_of=lambda info: 25 if _plain_on_tls(info) else 0,
    refine=(ETCD_RANGE, *KUBERNETES_DISCOVERY),
)  # fmt: skip
