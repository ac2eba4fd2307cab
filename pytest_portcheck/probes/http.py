"""HTTP, and the HTTP APIs that expose data or control: Elasticsearch, etcd, Docker Engine, Kubernetes,
Prometheus exporters and CouchDB.

Two probes: ``GET /`` (the Server header; Elasticsearch, CouchDB and exporters name themselves in the
body) and ``GET /version`` (etcd, Docker and Kubernetes answer it with JSON naming product and version).
Both are reads of public metadata, never a login. An answer of 401 with the API's own marks means the
API wants authentication; 200 means anyone who reaches the port may use it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pytest_portcheck.probes.spec import ProtocolProbe, Refinement
from pytest_portcheck.probes.ssh import first_line
from pytest_portcheck.services import ServiceInfo, neutralise

_HEADER = re.compile(rb"^([A-Za-z0-9-]+):[ \t]*(.*?)\r?$", re.MULTILINE)
_STATUS = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})")
_PRODUCT_VERSION = re.compile(r"^([A-Za-z][\w.-]*?)(?:/([\w.-]+))?(?:\s|$)")


def request(path: str) -> Any:
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
        auth = "required" if status in (401, 403) else "none" if status == 200 else None
        return ServiceInfo("elasticsearch", line, "Elasticsearch", number, auth=auth)
    if document.get("couchdb") == "Welcome":
        return ServiceInfo("couchdb", line, "CouchDB", _text(document.get("version")))
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
        auth = "none" if status == 200 else "required" if status in (401, 403) else None
        return ServiceInfo(
            "docker", line, _text(name) or "Docker Engine", _text(document.get("Version")), auth=auth
        )
    if "gitVersion" in document and "major" in document:
        return ServiceInfo("kubernetes", line, "Kubernetes", _text(document.get("gitVersion")), auth="none")
    if document.get("kind") == "Status" and document.get("apiVersion") == "v1" and status in (401, 403):
        return ServiceInfo("kubernetes", line, "Kubernetes", auth="required")
    return None


def etcd_auth(info: ServiceInfo, data: bytes) -> ServiceInfo:
    """A key-range read of nothing (count only, an empty key) without a token: refused when auth is on."""
    parsed = parse(data)
    if parsed is None:
        return info
    status, _, body = parsed
    document = _json(body)
    refused = status in (401, 403) or "user name is empty" in str(document.get("error", ""))
    auth = "required" if refused else "none" if status == 200 and "header" in document else info.auth
    return ServiceInfo(info.service, info.evidence, info.product, info.version, info.tls, auth, info.error)


def etcd_range_request(host: str) -> bytes:
    body = b'{"key": "AA==", "count_only": true}'
    return (
        f"POST /v3/kv/range HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portcheck\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _plain_on_tls(info: ServiceInfo) -> bool:
    return info.evidence.split(" ", 2)[1:2] == ["400"]


# Ranks: /version (10) names an API at once unless it got a 400, then it waits for TLS (20), as does
# / on a 400; any other answer to / waits only for /version, which may name an API behind it.
HTTP_PORTS = frozenset({80, 8000, 8008, 8080, 8081, 8888, 9090, 9100, 9200, 5984, 2375, 2379, 8500})
ROOT = ProtocolProbe(
    "http", classify_root, HTTP_PORTS, request("/"), response_complete, rarity=1, rank=30,
    rank_of=lambda info: 30 if _plain_on_tls(info) else 15,
)  # fmt: skip
VERSION = ProtocolProbe(
    "http-version", classify_version, frozenset({2375, 2379, 6443, 8001}), request("/version"),
    response_complete, rarity=3, rank=10, rank_of=lambda info: 25 if _plain_on_tls(info) else 0,
    refine=Refinement(etcd_range_request, etcd_auth, lambda info: info.service == "etcd"),
)  # fmt: skip
