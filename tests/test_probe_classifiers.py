"""The protocol modules' pure parts: classifiers over bytes, first moves, ordering — no sockets."""

from __future__ import annotations

import fnmatch
import json
import struct
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_portcheck.probes import (
    amqp,
    catalogue,
    dns,
    http,
    keyvalue,
    ldap,
    mail,
    mongodb,
    mqtt,
    mysql,
    rdp,
    smb,
)
from pytest_portcheck.probes import tls as tls_module
from pytest_portcheck.probes.model import SERVICES, ServiceInfo

EVERY_PROBE = [*catalogue.GREETERS, *catalogue.SPEAKERS]


_KEYS = ["username", "message", "kind", "apiVersion", "gitVersion", "major", "version", "number", "tagline",
         "ApiVersion", "Version", "Platform", "Name", "etcdserver", "header", "error", "couchdb"]  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), inner,
                                                                max_size=5),
    max_leaves=12,
)  # fmt: skip
HTTP_ANSWERS = st.builds(
    lambda status, header, body: b"HTTP/1.1 %d X\r\n%s\r\n%s" % (status, header, body),
    st.sampled_from([200, 400, 401, 403, 404, 500]),
    st.sampled_from([b"", b"X-elastic-product: Elasticsearch\r\n", b"Api-Version: 1.43\r\n", b"Server: Docker\r\n"]),
    st.binary(max_size=200) | _JSON.map(lambda document: json.dumps(document).encode()),
)  # fmt: skip


def _memcached_response(opcode: int, status: int, value: bytes, key: int = 0, extras: int = 0) -> bytes:
    return (bytes([0x81, opcode]) + key.to_bytes(2, "big") + bytes([extras, 0]) + status.to_bytes(2, "big")
            + len(value).to_bytes(4, "big") + bytes(12) + value)  # fmt: skip


MEMCACHED_BINARY = st.lists(
    st.builds(_memcached_response, st.sampled_from([0x0A, 0x0B, 0x20]), st.sampled_from([0, 0x20, 0x81]),
              st.binary(max_size=40), st.integers(0, 65535), st.integers(0, 255)),
    max_size=3,
).map(b"".join) | st.builds(lambda head, tail: b"\x81" + head + tail, st.binary(max_size=30), st.binary(max_size=30))  # fmt: skip
ANSWERS = st.binary(max_size=600) | HTTP_ANSWERS | MEMCACHED_BINARY


def _clean(info: ServiceInfo) -> bool:
    texts = (info.evidence, info.product or "", info.version or "", info.auth_note or "")
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for text in texts for c in text)


@given(ANSWERS)
def test_no_classifier_raises_or_leaks_control_characters(data: bytes) -> None:
    for probe in EVERY_PROBE:
        probe.complete(data)
        info = probe.classify(data)
        if info is None:
            continue
        assert info.service in SERVICES
        assert info.auth in (None, "none", "required")
        assert _clean(info), (probe.name, info)


@given(
    ANSWERS,
    st.sampled_from(["elasticsearch", "etcd", "kubernetes", "docker"]),
    st.sampled_from([None, "none"]),
)
def test_no_further_question_raises_or_leaks_control_characters(
    data: bytes, service: str, auth: str | None
) -> None:
    for probe in EVERY_PROBE:
        for step in probe.refine:
            step.complete(data)
            info = step.update(ServiceInfo(service, "HTTP/1.1 403 Forbidden", auth=auth), data)
            assert info.service == service and info.auth in (None, "none", "required")
            assert _clean(info), (probe.name, info)


def _mysql_greeting(server: bytes) -> bytes:
    body = b"\x0a" + server + b"\x00" + b"\x01\x00\x00\x00" + b"abcdefgh\x00" + b"\x00" * 20
    return len(body).to_bytes(3, "little") + b"\x00" + body


@pytest.mark.parametrize(
    ("server", "product", "version"),
    [
        (b"5.5.5-10.11.6-MariaDB-0+deb12u1", "MariaDB", "10.11.6"),
        (b"11.4.2-MariaDB", "MariaDB", "11.4.2"),
        (b"8.0.36-0ubuntu0.22.04.1", "MySQL", "8.0.36"),
        (b"5.5.5-ish", "MySQL", "5.5.5"),  # only MariaDB's greeting carries the compatibility prefix
    ],
)
def test_mysql_greeting_names_the_real_version(server: bytes, product: str, version: str) -> None:
    info = mysql.classify(_mysql_greeting(server))
    assert info is not None and (info.product, info.version) == (product, version)


def test_greetings_name_products() -> None:
    ftp = mail.classify_220(b"220 (vsFTPd 3.0.3)\r\n")
    smtp = mail.classify_220(b"220 mx.example.test ESMTP Postfix (Debian/GNU)\r\n")
    imap = mail.classify_imap(b"* OK [CAPABILITY IMAP4rev1] Dovecot (Debian) ready.\r\n")
    assert ftp is not None and (ftp.service, ftp.product, ftp.version) == ("ftp", "vsFTPd", "3.0.3")
    assert smtp is not None and (smtp.service, smtp.product) == ("smtp", "Postfix")
    assert imap is not None and (imap.service, imap.product) == ("imap", "Dovecot")
    assert mail.classify_pop3(b"+OK Dovecot ready.\r\n") is not None
    assert catalogue.classify_greeting(b"RFB 003.008\n") == ServiceInfo("vnc", "RFB 3.8", "RFB", "3.8")


def test_redis_info_and_auth() -> None:
    info_text = b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
    answer = b"+PONG\r\n$%d\r\n%s\r\n" % (len(info_text), info_text)
    assert keyvalue.redis_complete(answer) and not keyvalue.redis_complete(answer[:-5])
    found = keyvalue.classify_redis(answer)
    assert found is not None and (found.version, found.auth) == ("7.0.15", "none") and found.exposed
    locked = keyvalue.classify_redis(
        b"-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n"
    )
    assert locked is not None and locked.auth == "required" and not locked.exposed
    assert keyvalue.classify_redis(b"ERROR\r\n") is None  # memcached's answer to PING
    memcached = keyvalue.classify_memcached(b"VERSION 1.6.18\r\n")
    assert (
        memcached is not None
        and memcached.version == "1.6.18"
        and memcached.summary() == ("memcached 1.6.18, no auth")
    )


def test_memcached_with_authentication() -> None:
    # -Y authfile: the text protocol wants credentials before any command
    locked = keyvalue.classify_memcached(b"CLIENT_ERROR unauthenticated\r\n")
    assert locked is not None and (locked.service, locked.auth, locked.exposed) == (
        "memcached",
        "required",
        False,
    )
    assert keyvalue.classify_memcached(b"CLIENT_ERROR bad command line format\r\n") is None
    # -S (SASL): binary only; VERSION answers, NOOP is refused until authenticated
    sasl = _memcached_response(0x0B, 0, b"1.6.18") + _memcached_response(0x0A, 0x20, b"Auth failure.")
    assert keyvalue.binary_complete(sasl) and not keyvalue.binary_complete(sasl[:-3])
    found = keyvalue.classify_memcached_binary(sasl)
    assert found is not None and (found.version, found.auth) == ("1.6.18", "required")
    assert found.evidence == "binary protocol: VERSION 1.6.18, NOOP Auth failure."
    open_binary = keyvalue.classify_memcached_binary(
        _memcached_response(0x0B, 0, b"1.6.18") + _memcached_response(0x0A, 0, b"")
    )
    assert open_binary is not None and open_binary.auth == "none" and open_binary.exposed
    cut = keyvalue.classify_memcached_binary(_memcached_response(0x0B, 0, b"1.6.18"))
    assert cut is not None and cut.auth is None  # the NOOP's answer never came: cannot tell
    unknown = keyvalue.classify_memcached_binary(
        _memcached_response(0x0B, 0, b"1.6.18") + _memcached_response(0x0A, 0x81, b"Unknown command")
    )
    assert unknown is not None and unknown.auth is None
    lying = _memcached_response(0x0B, 0, b"1.6.18")[:8] + (10**6).to_bytes(4, "big") + bytes(12) + b"1.6"
    assert keyvalue.classify_memcached_binary(lying) is None and not keyvalue.binary_complete(lying)
    # an auth-file memcached answers binary bytes in text
    assert keyvalue.classify_memcached_binary(b"CLIENT_ERROR unauthenticated\r\n") == locked
    assert keyvalue.MEMCACHED_BINARY in catalogue.first_moves(41000, "memcached")


def test_http_apis_by_their_own_marks() -> None:
    es = http.classify_root(
        b'HTTP/1.1 200 OK\r\nX-elastic-product: Elasticsearch\r\n\r\n{"version": {"number": "8.11.1"}, '
        b'"tagline": "You Know, for Search"}'
    )
    assert es is not None and (es.service, es.version, es.auth) == ("elasticsearch", "8.11.1", "none")
    plain = http.classify_root(b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\n\r\n")
    assert plain is not None and (plain.service, plain.product, plain.version) == ("http", "nginx", "1.22.1")
    assert http.classify_version(b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\n\r\n") is None
    etcd = http.classify_version(b'HTTP/1.1 200 OK\r\n\r\n{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}')
    assert etcd is not None and (etcd.service, etcd.version) == ("etcd", "3.4.23")
    refused = http.etcd_auth(
        etcd, b'HTTP/1.1 401 Unauthorized\r\n\r\n{"error":"etcdserver: user name is empty"}'
    )
    assert refused.auth == "required"
    # a proxy's bare 403 proves nothing; etcd's own refusal names the missing user (HTTP 400)
    assert http.etcd_auth(etcd, b"HTTP/1.1 403 Forbidden\r\n\r\n<html>no</html>").auth is None
    missing_user = b'HTTP/1.1 400 Bad Request\r\n\r\n{"error":"etcdserver: user name is empty","code":3}'
    assert http.etcd_auth(etcd, missing_user).auth == "required"
    assert http.classify_root(b"SSH-2.0-x\r\n") is None
    assert not http.response_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")


def _http(status: str, body: bytes, *headers: str) -> bytes:
    head = "".join(f"{header}\r\n" for header in ("Content-Type: application/json", *headers))
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body


ES = "X-elastic-product: Elasticsearch"
ES_FORBIDDEN = _http("403 Forbidden", b'{"error":{"type":"security_exception","reason":"action '
                     b'[cluster:monitor/main] is unauthorized for user [_anonymous]"},"status":403}', ES)  # fmt: skip
ES_ANONYMOUS = _http(
    "200 OK", b'{"username":"_anonymous","roles":["reader"],"authentication_type":"anonymous"}', ES
)
ES_MISSING_CREDENTIALS = _http("401 Unauthorized", b'{"error":{"type":"security_exception"},"status":401}', ES,
                               'WWW-Authenticate: Basic realm="security"')  # fmt: skip


@pytest.mark.parametrize(
    ("root", "identity", "auth", "note"),
    [
        # an anonymous user that may read indices but not cluster:monitor/main: 403 on /, data on _search
        (ES_FORBIDDEN, ES_ANONYMOUS, "none", 'anonymous requests act as user "_anonymous"'),
        # authz_exception: false tells that same anonymous user 401 instead
        (ES_MISSING_CREDENTIALS, ES_ANONYMOUS, "none", 'anonymous requests act as user "_anonymous"'),
        (ES_MISSING_CREDENTIALS, ES_MISSING_CREDENTIALS, "required", None),
        (ES_FORBIDDEN, _http("403 Forbidden", b"<html>nginx</html>"), None, "GET / refused with 403*"),
        (ES_FORBIDDEN, b"", None, "GET / refused with 403*"),  # the identity request got no answer
        (ES_MISSING_CREDENTIALS, b"", None, "GET / refused with 401*"),
        # security off: GET / served us; the identity endpoint's 500 changes nothing
        (_http("200 OK", b'{"tagline": "You Know, for Search"}', ES), _http("500 Error", b"{}", ES), "none", None),
    ],
    ids=["anonymous-reader", "anonymous-401", "locked", "proxy-blocks-identity", "no-identity", "401-alone",
         "security-off"],
)  # fmt: skip
def test_elasticsearch_auth_from_its_identity_endpoint(
    root: bytes, identity: bytes, auth: str | None, note: str | None
) -> None:
    first = http.classify_root(root)
    assert first is not None and first.service == "elasticsearch"
    assert first.auth in (None, "none")  # only a 200 decides on GET / alone
    info = http.elasticsearch_identity(first, identity)
    assert info.auth == auth, info
    assert (info.auth_note is None) if note is None else fnmatch.fnmatch(info.auth_note or "", note), info
    assert info.exposed == (auth == "none")


DOCKER = ("Api-Version: 1.43", "Server: Docker/24.0.7 (linux)")


@pytest.mark.parametrize(
    ("answer", "auth", "note"),
    [
        (_http("200 OK", b'{"Version":"24.0.7","ApiVersion":"1.43"}', *DOCKER), "none", None),
        (_http("401 Unauthorized", b'{"message":"unauthorized"}', *DOCKER), "required", None),
        (_http("403 Forbidden", b'{"message":"authorization denied by plugin authz: not allowed"}', *DOCKER),
         None, "403 from an authorization plugin: authorization denied by plugin authz: not allowed"),
        (_http("500 Error", b'{"message":"oops"}', *DOCKER), None, None),
    ],
    ids=["open", "login", "authz-plugin", "error"],
)  # fmt: skip
def test_docker_auth_only_from_401_or_200(answer: bytes, auth: str | None, note: str | None) -> None:
    info = http.classify_version(answer)
    assert info is not None and (info.service, info.auth, info.auth_note) == ("docker", auth, note)


def _k8s_status(code: int, message: str) -> bytes:
    status = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                         "code": code}).encode()  # fmt: skip
    return _http(f"{code} {'Unauthorized' if code == 401 else 'Forbidden'}", status)


K8S_VERSION = _http("200 OK", b'{"major":"1","minor":"28","gitVersion":"v1.28.4"}')
K8S_ANONYMOUS_403 = _k8s_status(403, 'forbidden: User "system:anonymous" cannot get path "/api"')
K8S_401 = _k8s_status(401, "Unauthorized")


@pytest.mark.parametrize(
    ("first", "api", "apis", "auth", "note"),
    [
        # the default: /version public, discovery closed to system:anonymous
        (K8S_VERSION, K8S_ANONYMOUS_403, K8S_ANONYMOUS_403, None, "anonymous requests are accepted as system:*"),
        (K8S_VERSION, K8S_401, b"", "required", None),  # --anonymous-auth=false but /version answered
        (K8S_401, b"", b"", "required", None),
        (K8S_VERSION, _http("200 OK", b'{"kind":"APIVersions","versions":["v1"]}'), b"", "none",
         "anonymous requests may read /api"),
        (K8S_VERSION, K8S_ANONYMOUS_403, _http("200 OK", b'{"kind":"APIGroupList","groups":[]}'), "none",
         "anonymous requests may read /apis"),
        (K8S_VERSION, _http("200 OK", b"<html>a proxy's page</html>"), b"", None, "/version answers anyone"),
        (K8S_VERSION, b"", b"", None, "/version answers anyone"),  # no answer to the discovery requests
        # GET / inside TLS: the 403 already names system:anonymous
        (_k8s_status(403, 'forbidden: User "system:anonymous" cannot get path "/"'), K8S_ANONYMOUS_403, b"",
         None, "anonymous requests are accepted as system:*"),
    ],
    ids=["default", "anonymous-off-after-version", "anonymous-off", "discovery-open", "groups-open",
         "not-discovery", "no-answer", "root-403"],
)  # fmt: skip
def test_kubernetes_public_paths_prove_nothing(
    first: bytes, api: bytes, apis: bytes, auth: str | None, note: str | None
) -> None:
    info = http.classify_version(first)
    assert info is not None and info.service == "kubernetes"
    for step, answer in zip(http.KUBERNETES_DISCOVERY, (api, apis), strict=True):
        if step.applies(info):
            info = step.update(info, answer)
    assert info.auth == auth, info
    assert (info.auth_note is None) if note is None else fnmatch.fnmatch(info.auth_note or "", note), info
    assert info.exposed == (auth == "none")
    assert ("EXPOSED" in info.describe()) == (auth == "none")


def test_kubernetes_root_where_discovery_is_open() -> None:
    # inside TLS the probe asks GET /: an API open to anonymous discovery lists its paths there
    root = http.classify_root(_http("200 OK", b'{"paths": ["/api", "/api/v1", "/apis", "/version"]}'))
    assert root is not None and (root.service, root.auth) == ("kubernetes", None)
    assert http.classify_root(_http("200 OK", b'{"paths": ["/docs"]}')) == ServiceInfo(
        "http", "HTTP/1.1 200 OK"
    )
    assert set(http.KUBERNETES_DISCOVERY) <= set(http.ROOT.refine)


def test_refinements_apply_only_to_their_own_service() -> None:
    es = ServiceInfo("elasticsearch", "HTTP/1.1 403 Forbidden")
    kubernetes = ServiceInfo("kubernetes", "HTTP/1.1 200 OK")
    applies = {step.request("h").split(b" ")[1]: step.applies for step in http.API_CHECKS}
    assert applies[b"/_security/_authenticate"](es) and not applies[b"/_security/_authenticate"](kubernetes)
    assert applies[b"/api"](kubernetes) and not applies[b"/api"](es)
    assert not applies[b"/api"](replace(kubernetes, auth="required"))  # decided: no further question
    assert catalogue.TLS.refine == http.API_CHECKS  # what runs inside TLS is asked the same


def test_binary_protocols() -> None:
    assert mqtt.classify(b"\x20\x02\x00\x05") == ServiceInfo(
        "mqtt", "CONNACK 5 (not authorized)", auth="required"
    )
    assert mqtt.classify(b"\x20\x02\x00\x09") is None
    assert amqp.classify(b"AMQP\x00\x00\x09\x01") is not None
    assert rdp.classify(bytes.fromhex("030000130ed000001234000201080002000000")) is not None
    assert smb.classify(b"\x00\x00\x00\x04\xffSMB") is not None
    assert ldap.classify(b"0\x0c\x02\x01\x01e\x07\n\x01\x00\x04\x00\x04\x00") is not None  # searchResDone
    assert ldap.classify(b"0\x0c\x02\x01\x02e\x07\n\x01\x00\x04\x00\x04\x00") is None  # not our message id


def test_dns_answer_must_be_ours() -> None:
    question = dns.QUERY[2 + 12 :]
    answer_rr = b"\xc0\x0c" + struct.pack("!HHIH", 16, 3, 0, 13) + b"\x0cdnsmasq-2.90"
    message = struct.pack("!HHHHHH", dns.QUERY_ID, 0x8400, 1, 1, 0, 0) + question + answer_rr
    found = dns.classify(len(message).to_bytes(2, "big") + message)
    assert found is not None and (found.product, found.version) == ("dnsmasq", "2.90")
    stranger = struct.pack("!HHHHHH", 0x1234, 0x8400, 1, 0, 0, 0) + question
    assert dns.classify(len(stranger).to_bytes(2, "big") + stranger) is None


def test_mongodb_reader_skips_what_it_does_not_need() -> None:
    document = (
        b"\x03nested\x00" + struct.pack("<i", 13) + b"\x10x\x00\x01\x00\x00\x00\x00\x00"
        + b"\x02version\x00" + struct.pack("<i", 7) + b"7.0.14\x00" + b"\x01ok\x00" + struct.pack("<d", 1.0)
    )  # fmt: skip
    parsed = mongodb.read_document(struct.pack("<i", len(document) + 5) + document + b"\x00")
    assert parsed == {"version": "7.0.14", "ok": 1.0}
    assert mongodb.read_document(b"\xff\xff\xff\x7f\x02") == {}  # a length that lies


def test_order_follows_declarations_then_ports_then_rarity() -> None:
    assert catalogue.first_moves(41000, "redis") == (keyvalue.REDIS,)
    assert catalogue.first_moves(6379, None) == (keyvalue.REDIS,)
    assert catalogue.first_moves(22, None) == ()  # SSH speaks first: wait for it
    order = catalogue.by_likelihood(5432)
    assert order[0].name == "postgresql" and order[-1].rarity >= order[1].rarity


def test_unreadable_certificate_is_this_ports_problem() -> None:
    facts = tls_module.tls_info(b"\x30\x03\x02\x01\x00", "TLSv1.3", "TLS_AES_128_GCM_SHA256", False)
    assert facts.certificate_error is not None and "could not be read" in facts.certificate_error
    assert facts.version == "TLSv1.3"
