"""Protocol-faithful test peers for services that cannot run here (MongoDB, Docker, Elasticsearch,
Kubernetes, CouchDB, a Prometheus exporter, RabbitMQ, SMB, RDP, VNC) and hostile TLS servers.

Each is a ``Behaviour`` for the ``peer`` fixture: it reads the client's request as the real server
would (framing, lengths, command names) and answers with the bytes the real server sends, taken from
the protocols' specifications and from captures of the real servers' answers.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from conftest import Behaviour

Route = tuple[int, Mapping[str, str], bytes]


def read_until(connection: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    data = b""
    while marker not in data and len(data) < limit:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def http_api(routes: Mapping[str, Route], default: Route | Callable[[str], Route] | None = None) -> Behaviour:
    """An HTTP/1.1 server: ``routes`` maps a path to (status, headers, body); elsewhere ``default``
    (or what it makes of the path), else 404 JSON."""
    missing = default or (404, {"Content-Type": "application/json"}, b'{"message":"page not found"}')

    def behaviour(connection: socket.socket) -> None:
        request = read_until(connection, b"\r\n\r\n")
        path = request.split(b" ", 2)[1].decode(errors="replace") if request.count(b" ") >= 2 else "/"
        status, headers, body = routes.get(path) or (missing(path) if callable(missing) else missing)
        lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [f"Content-Length: {len(body)}", "Connection: close"]
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return behaviour


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


JSON = {"Content-Type": "application/json"}
DOCKER = http_api(
    {
        "/version": (200, {**JSON, "Api-Version": "1.43", "Server": "Docker/24.0.7 (linux)"}, _json(
            {"Platform": {"Name": "Docker Engine - Community"}, "Version": "24.0.7", "ApiVersion": "1.43",
             "MinAPIVersion": "1.12", "Os": "linux", "Arch": "amd64"})),
        "/_ping": (200, {"Api-Version": "1.43"}, b"OK"),
    },
    (404, {**JSON, "Api-Version": "1.43", "Server": "Docker/24.0.7 (linux)"}, b'{"message":"page not found"}'),
)  # fmt: skip
ELASTIC_ROOT = {
    "name": "node-1", "cluster_name": "docker-cluster", "version": {"number": "8.11.1", "build_flavor": "default"},
    "tagline": "You Know, for Search",
}  # fmt: skip
ELASTIC = {**JSON, "X-elastic-product": "Elasticsearch"}
ELASTIC_IDENTITY = "/_security/_authenticate"


def _elastic_error(status: int, kind: str, reason: str) -> Route:
    headers = (
        {**ELASTIC, "WWW-Authenticate": 'Basic realm="security" charset="UTF-8"'}
        if status == 401
        else ELASTIC
    )
    cause = {"type": kind, "reason": reason}
    return status, headers, _json({"error": {"root_cause": [cause], **cause}, "status": status})


ELASTICSEARCH_OPEN = http_api(  # xpack.security.enabled: false
    {"/": (200, ELASTIC, _json(ELASTIC_ROOT)),
     ELASTIC_IDENTITY: _elastic_error(500, "exception", "Security must be explicitly enabled when using a "
                                      "[basic] license. Enable security by setting [xpack.security.enabled] "
                                      "to [true] in the elasticsearch.yml file and restart the node.")},
)  # fmt: skip
ELASTICSEARCH_LOCKED = http_api(
    {}, _elastic_error(401, "security_exception", "missing authentication credentials for REST request [/]")
)
ELASTICSEARCH_ANONYMOUS_READER = http_api(
    # xpack.security.authc.anonymous: {username: _anonymous, roles: reader}: the role may read an
    # index, not cluster:monitor/main, so GET / is refused (403) while /_search hands out documents.
    {"/": _elastic_error(403, "security_exception", "action [cluster:monitor/main] is unauthorized for "
                         "user [_anonymous] with effective roles [reader], this action is granted by the "
                         "cluster privileges [monitor,manage,all]"),
     ELASTIC_IDENTITY: (200, ELASTIC, _json(
         {"username": "_anonymous", "roles": ["reader"], "full_name": None, "email": None,
          "metadata": {"_reserved": True}, "enabled": True,
          "authentication_realm": {"name": "__anonymous", "type": "__anonymous"},
          "lookup_realm": {"name": "__anonymous", "type": "__anonymous"}, "authentication_type": "anonymous"})),
     "/_search": (200, ELASTIC, _json({"hits": {"total": {"value": 1}, "hits": [{"_source": {"ssn": "x"}}]}}))},
)  # fmt: skip
ELASTICSEARCH_BEHIND_PROXY = http_api(
    # GET / refused with 403, the identity endpoint blocked by a proxy (nginx's 403 page): untold
    {"/": _elastic_error(403, "security_exception", "action [cluster:monitor/main] is unauthorized"),
     ELASTIC_IDENTITY: (403, {"Content-Type": "text/html", "Server": "nginx"}, b"<html>403 Forbidden</html>")},
)  # fmt: skip
DOCKER_HEADERS = {**JSON, "Api-Version": "1.43", "Server": "Docker/24.0.7 (linux)"}
DOCKER_AUTHZ = http_api(
    # an authorization plugin (--authorization-plugin) refusing an unauthenticated client's request
    {}, (403, DOCKER_HEADERS, _json({"message": "authorization denied by plugin opa-docker-authz: request "
                                                "rejected by administrative policy"})),
)  # fmt: skip
DOCKER_LOGIN = http_api(
    {}, (401, {**DOCKER_HEADERS, "WWW-Authenticate": 'Basic realm="docker"'}, _json({"message": "unauthorized"}))
)  # fmt: skip


def kubernetes_status(code: int, message: str) -> bytes:
    reason = {401: "Unauthorized", 403: "Forbidden"}[code]
    return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "details": {}, "code": code})  # fmt: skip


KUBERNETES_STATUS = kubernetes_status(401, "Unauthorized")
KUBERNETES_VERSION = _json({"major": "1", "minor": "28", "gitVersion": "v1.28.4", "platform": "linux/amd64"})
COUCHDB = http_api({"/": (200, {**JSON, "Server": "CouchDB/3.3.3 (Erlang OTP/24)"}, _json(
    {"couchdb": "Welcome", "version": "3.3.3", "vendor": {"name": "The Apache Software Foundation"}}))})  # fmt: skip
EXPORTER = http_api({
    "/": (200, {"Content-Type": "text/html"},
          b"<html><head><title>Node Exporter</title></head><body><h1>Node Exporter</h1>"
          b'<p><a href="/metrics">Metrics</a></p></body></html>'),
    "/metrics": (200, {"Content-Type": "text/plain"}, b"# HELP up 1 if up\n# TYPE up gauge\nup 1\n"),
})  # fmt: skip


def bson(fields: Mapping[str, object]) -> bytes:
    body = b""
    for name, value in fields.items():
        key = name.encode() + b"\x00"
        if isinstance(value, bool):
            body += b"\x08" + key + bytes([value])
        elif isinstance(value, int):
            body += b"\x10" + key + struct.pack("<i", value)
        elif isinstance(value, float):
            body += b"\x01" + key + struct.pack("<d", value)
        elif isinstance(value, dict):
            body += b"\x03" + key + bson(value)
        else:
            text = str(value).encode() + b"\x00"
            body += b"\x02" + key + struct.pack("<i", len(text)) + text
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def mongodb(requires_auth: bool) -> Behaviour:
    """OP_MSG commands answered as mongod 7.0 does; ``listDatabases`` refused (code 13) with auth on."""
    answers: dict[str, dict[str, object]] = {
        "hello": {"isWritablePrimary": True, "maxBsonObjectSize": 16777216, "maxWireVersion": 21,
                  "minWireVersion": 0, "readOnly": False, "ok": 1.0},
        "buildInfo": {"version": "7.0.14", "gitVersion": "ce59cfc6a3c5e5c067dca0d30697edd68d4f5188", "ok": 1.0},
        "listDatabases": {"ok": 0.0, "errmsg": "command listDatabases requires authentication", "code": 13,
                          "codeName": "Unauthorized"} if requires_auth else
                         {"databases": {"0": {"name": "admin"}}, "ok": 1.0},
    }  # fmt: skip

    def behaviour(connection: socket.socket) -> None:
        while True:
            length, request_id, _, opcode = struct.unpack("<iiii", read_exactly(connection, 16))
            if not 16 < length <= 48_000_000:  # mongod: "message msgLen is invalid", and it hangs up
                return
            body = read_exactly(connection, length - 16)
            if opcode != 2013 or length > 65536 or body[4:5] != b"\x00":  # not an OP_MSG: mongod hangs up
                return
            name = body[10 : body.index(b"\x00", 10)].decode()  # the first key of the document
            reply = struct.pack("<I", 0) + b"\x00" + bson(answers.get(name, {"ok": 0.0, "code": 59}))
            connection.sendall(
                struct.pack("<iiii", 16 + len(reply), 100 + request_id, request_id, 2013) + reply
            )

    return behaviour


def _amqp_table(fields: Mapping[str, str]) -> bytes:
    table = b"".join(
        bytes([len(k)]) + k.encode() + b"S" + struct.pack(">I", len(v)) + v.encode()
        for k, v in fields.items()
    )
    return struct.pack(">I", len(table)) + table


def rabbitmq(connection: socket.socket) -> None:
    """RabbitMQ's answer to the AMQP 0-9-1 protocol header: Connection.Start with server properties."""
    if read_exactly(connection, 8) != b"AMQP\x00\x00\x09\x01":
        connection.sendall(b"AMQP\x00\x00\x09\x01")  # what RabbitMQ answers any other header
        return
    properties = _amqp_table({"product": "RabbitMQ", "version": "3.12.10", "platform": "Erlang/OTP 25.3"})
    payload = (
        b"\x00\x0a\x00\x0a\x00\x09"
        + properties
        + struct.pack(">I", 5)
        + b"PLAIN"
        + struct.pack(">I", 5)
        + b"en_US"
    )
    connection.sendall(b"\x01\x00\x00" + struct.pack(">I", len(payload)) + payload + b"\xce")
    read_until(connection, b"\xce")


def smb(connection: socket.socket) -> None:
    """An SMB2 NEGOTIATE response (dialect 2.1) to an SMB1 negotiate offering the SMB2 dialects."""
    header = read_exactly(connection, 4)
    request = read_exactly(connection, min(int.from_bytes(header[1:], "big"), 65536))
    if request[:5] != b"\xffSMB\x72" or b"SMB 2.002" not in request:
        return
    smb2 = b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ16s", 64, 0, 0, 0, 1, 1, 0, 0, 0xFEFF, 0, 0, b"\x00" * 16)
    response = struct.pack("<HHH", 65, 1, 0x02FF) + b"\x00" * 58
    message = smb2 + response
    connection.sendall(b"\x00" + len(message).to_bytes(3, "big") + message)


def rdp(connection: socket.socket) -> None:
    """X.224 Connection Confirm selecting CredSSP, as Windows and xrdp answer a negotiation request."""
    request = read_exactly(connection, 4)
    if request[:2] != b"\x03\x00":
        return
    read_exactly(connection, int.from_bytes(request[2:4], "big") - 4)
    connection.sendall(bytes.fromhex("030000130ed000001234000201080002000000"))


def vnc(connection: socket.socket) -> None:
    connection.sendall(b"RFB 003.008\n")
    read_until(connection, b"\n")


def tls_server(
    certificate: tuple[Path, Path], inner: Behaviour | None = None, oldest: str = "TLSv1.2"
) -> Behaviour:
    """TLS in front of ``inner`` (or of nothing); ``oldest`` is the lowest version accepted (TLSv1
    needs OpenSSL's security level 0, as an old server's configuration would have it)."""

    def behaviour(connection: socket.socket) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*certificate)
        if oldest != "TLSv1.2":
            context.set_ciphers("ALL:@SECLEVEL=0")
        with warnings.catch_warnings():  # TLSv1 is deprecated: that is the point of this peer
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = getattr(ssl.TLSVersion, oldest.replace(".", "_"))
        with context.wrap_socket(connection, server_side=True) as wrapped:
            if inner is not None:
                inner(wrapped)
            else:
                read_until(wrapped, b"\n")

    return behaviour


def kubernetes(anonymous: str) -> Behaviour:
    """A kube-apiserver as an anonymous request finds it. ``default``: anonymous auth on, RBAC's
    defaults (system:public-info-viewer: /version, /healthz, /livez, /readyz for everyone; discovery
    only for system:authenticated). ``off``: --anonymous-auth=false. ``open``: discovery bound to
    system:unauthenticated (or kubectl proxy, AlwaysAllow): /api and /apis answer."""
    if anonymous == "off":
        return http_api({}, (401, JSON, KUBERNETES_STATUS))
    public: dict[str, Route] = {
        "/version": (200, JSON, KUBERNETES_VERSION),
        **{path: (200, {"Content-Type": "text/plain"}, b"ok") for path in ("/healthz", "/livez", "/readyz")},
    }
    if anonymous == "open":
        paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/readyz", "/version"]
        public["/"] = (200, JSON, _json({"paths": paths}))
        public["/api"] = (200, JSON, _json({"kind": "APIVersions", "versions": ["v1"],
                                            "serverAddressByClientCIDRs": []}))  # fmt: skip
        public["/apis"] = (200, JSON, _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))

    def refusal(path: str) -> Route:
        return (
            403,
            JSON,
            kubernetes_status(403, f'forbidden: User "system:anonymous" cannot get path "{path}"'),
        )

    return http_api(public, refusal)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + content


def _elements(der: bytes) -> list[bytes]:
    """The elements inside one DER SEQUENCE, each with its own tag and length."""
    at = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    found = []
    while at < len(der):
        first = der[at + 1]
        header = 2 + (first & 0x7F if first & 0x80 else 0)
        size = int.from_bytes(der[at + 2 : at + header], "big") if first & 0x80 else first
        found.append(der[at : at + header + size])
        at += header + size
    return found


def month_13_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate whose notAfter is in month 13, correctly signed: OpenSSL loads and
    serves it, ``cryptography`` refuses to parse it."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import load_pem_x509_certificate
    from servers import make_certificate

    cert_path, key_path = make_certificate(folder, "month13", 30)
    good = load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    tbs = good.tbs_certificate_bytes
    times = [i for i in range(len(tbs) - 15) if tbs[i : i + 2] == b"\x17\x0d"]
    not_after = times[1] + 2  # YYMMDDHHMMSSZ
    tbs = tbs[: not_after + 2] + b"13" + tbs[not_after + 4 :]
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    algorithm = _elements(good.public_bytes(serialization.Encoding.DER))[1]
    der = _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))
    cert_path.write_text(ssl.DER_cert_to_PEM_cert(der))
    return cert_path, key_path
