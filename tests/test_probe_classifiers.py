"""The protocol modules' pure parts: classifiers over bytes, first moves, ordering — no sockets."""

from __future__ import annotations

import struct

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
from pytest_portcheck.services import SERVICES, ServiceInfo

EVERY_PROBE = [*catalogue.GREETERS, *catalogue.SPEAKERS]


@given(st.binary(max_size=600))
def test_no_classifier_raises_or_leaks_control_characters(data: bytes) -> None:
    for probe in EVERY_PROBE:
        probe.complete(data)
        info = probe.classify(data)
        if info is None:
            continue
        assert info.service in SERVICES
        for text in (info.evidence, info.product or "", info.version or ""):
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text), (probe.name, text)


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
    assert http.classify_root(b"SSH-2.0-x\r\n") is None
    assert not http.response_complete(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")


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
