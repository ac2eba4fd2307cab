"""The Terraform reader on plan and state JSON in the documented ``terraform show -json`` format
(tests/data/terraform; no terraform binary exists here, so the fixtures are written to the format's
documentation): which ports each firewall rule opens to whom, with the rule's line; bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_portcheck.inventory.sources import Reach, SourceError, SourceReading, read_terraform

DATA = Path(__file__).parent / "data" / "terraform"
NETWORK, EVERYONE = Reach.NETWORK, Reach.EVERYONE


def found(reading: SourceReading) -> set[tuple[str, str, str | None, Reach, str | None]]:
    return {(e.origin.owner, e.spec, e.address, e.reach, e.peer) for e in reading.exposures}


def test_a_plan() -> None:
    reading = read_terraform(DATA / "plan.json")
    sg, rdp, apps = (
        "aws_security_group.web",
        "module.azure.module.nsg.azurerm_network_security_rule.rdp",
        ("module.azure.module.nsg.azurerm_network_security_rule.apps"),
    )
    gcp_ssh, gcp_web = "module.gcp.google_compute_firewall.ssh", "module.gcp.google_compute_firewall.web"
    assert found(reading) == {
        (sg, "22/tcp", None, NETWORK, "198.51.100.0/24"),
        (sg, "443/tcp", None, EVERYONE, "0.0.0.0/0"),
        (sg, "443/tcp", None, EVERYONE, "::/0"),
        (sg, "53/udp", None, NETWORK, "10.0.0.0/8"),
        (sg, "8000-8010/tcp", None, NETWORK, "sg-0lb"),
        (sg, "1-65535/tcp", None, NETWORK, "self"),  # protocol -1: every port, tcp and udp
        (sg, "1-65535/udp", None, NETWORK, "self"),
        ("aws_security_group_rule.postgres", "5432/tcp", None, NETWORK, "10.1.0.0/16"),
        ("aws_vpc_security_group_ingress_rule.http6", "80/tcp", None, EVERYONE, "::/0"),
        ("aws_vpc_security_group_ingress_rule.bastion_all", "1-65535/tcp", None, NETWORK, "203.0.113.5/32"),
        ("aws_vpc_security_group_ingress_rule.bastion_all", "1-65535/udp", None, NETWORK, "203.0.113.5/32"),
        (gcp_ssh, "22/tcp", None, NETWORK, "35.235.240.0/20"),
        (gcp_ssh, "8000-8080/tcp", None, NETWORK, "35.235.240.0/20"),
        (gcp_ssh, "1-65535/udp", None, NETWORK, "35.235.240.0/20"),  # udp without ports: all of them
        (gcp_web, "80/tcp", None, EVERYONE, "0.0.0.0/0"),  # no sources: Google's default, everyone
        (gcp_web, "443/tcp", None, EVERYONE, "0.0.0.0/0"),
        (rdp, "3389/tcp", "10.2.0.4", EVERYONE, "Internet"),
        *{(apps, f"{ports}/{proto}", None, NETWORK, peer)
          for ports in ("8080", "9000-9001") for proto in ("tcp", "udp") for peer in ("10.0.0.0/16", "VirtualNetwork")},
    }  # fmt: skip
    # egress rules, a data source (prior_state) and resource_changes/configuration are not read
    owners = {e.origin.owner for e in reading.exposures}
    assert not owners & {"aws_security_group_rule.out", "module.gcp.google_compute_firewall.out"}
    assert not any(owner.startswith("data.") for owner in owners)
    notes = [(note.origin.owner, note.message) for note in reading.notes]
    assert any(owner.endswith("deny_all") and "not subtracted" in message for owner, message in notes)
    assert any("icmp" in message for owner, message in notes if owner == sg)


def test_every_rule_knows_its_line() -> None:
    path = DATA / "plan.json"
    lines = path.read_text().splitlines()
    reading = read_terraform(path)
    for exposure in reading.exposures:
        block = "\n".join(lines[exposure.origin.line - 1 : exposure.origin.line + 30])
        assert block.lstrip().startswith("{"), exposure.origin
        assert exposure.origin.path == str(path)
    by_entry = {e.origin.entry: e.origin.line for e in reading.exposures}
    ssh = by_entry["aws_security_group.web ingress[0] tcp 22 from 198.51.100.0/24"]
    assert '"description": "ssh from the office"' in "\n".join(lines[ssh - 1 : ssh + 5])
    postgres = by_entry["aws_security_group_rule.postgres rule tcp 5432 from 10.1.0.0/16"]
    assert lines[postgres].strip() == '"address": "aws_security_group_rule.postgres",'


def test_a_state_and_its_one_line_form_declare_the_same() -> None:
    pretty, compact = read_terraform(DATA / "state.json"), read_terraform(DATA / "state-compact.json")
    assert (
        found(pretty)
        == found(compact)
        == {
            ("aws_security_group_rule.postgres", "5432/tcp", None, NETWORK, "10.1.0.0/16"),
            ("module.gcp.google_compute_firewall.ssh", "22/tcp", None, NETWORK, "35.235.240.0/20"),
            ("module.gcp.google_compute_firewall.ssh", "8000-8080/tcp", None, NETWORK, "35.235.240.0/20"),
            ("module.gcp.google_compute_firewall.ssh", "1-65535/udp", None, NETWORK, "35.235.240.0/20"),
        }
    )
    assert {e.origin.line for e in compact.exposures} == {1}
    assert {e.origin.line for e in pretty.exposures} == {7, 92, 99}


# ---- bad input ----


def write(tmp_path: Path, document: object, name: str = "plan.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2))
    return path


def plan_of(*resources: dict[str, object]) -> dict[str, object]:
    return {"format_version": "1.2", "planned_values": {"root_module": {"resources": list(resources)}}}


def resource(kind: str, name: str, **values: object) -> dict[str, object]:
    return {"address": f"{kind}.{name}", "mode": "managed", "type": kind, "name": name, "values": values}


def test_a_rule_for_every_protocol_is_every_port_and_a_note(tmp_path: Path) -> None:
    path = write(tmp_path, plan_of(resource("aws_security_group_rule", "all", type="ingress", protocol="-1",
                                            from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"])))  # fmt: skip
    reading = read_terraform(path)
    assert found(reading) == {
        ("aws_security_group_rule.all", "1-65535/tcp", None, EVERYONE, "0.0.0.0/0"),
        ("aws_security_group_rule.all", "1-65535/udp", None, EVERYONE, "0.0.0.0/0"),
    }
    (note,) = reading.notes
    assert str(note).startswith(f"{path}:6: ")
    assert 'protocol = "-1" allows every protocol on every port' in note.message
    assert "name the ports and protocols to narrow it" in note.message


def test_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "format_version": "1.2",\n  "planned_values": {,\n}\n')
    with pytest.raises(SourceError) as raised:
        read_terraform(path)
    assert raised.value.line == 3
    assert str(raised.value).startswith(f"{path}:3: not valid JSON") and "terraform show -json" in str(
        raised.value
    )


def test_a_missing_file_a_raw_state_and_a_file_without_rules(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist: write it with 'terraform show -json"):
        read_terraform(tmp_path / "nope.json")
    raw = write(tmp_path, {"version": 4, "terraform_version": "1.9.8", "resources": []}, "terraform.tfstate")
    with pytest.raises(
        SourceError, match=r"terraform\.tfstate:1: not the JSON of 'terraform show -json' \(a raw \.tfstate"
    ):
        read_terraform(raw)
    empty = write(tmp_path, {"format_version": "1.0"}, "empty.json")
    with pytest.raises(
        SourceError, match=r"has neither planned_values\.root_module .* nor values\.root_module"
    ):
        read_terraform(empty)
    nothing = write(tmp_path, plan_of(resource("aws_instance", "web", ami="ami-1")), "instances.json")
    with pytest.raises(
        SourceError, match=r"instances\.json: declares none of the firewall resources .*aws_security_group"
    ):
        read_terraform(nothing)


def test_every_bad_rule_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, plan_of(
        resource("aws_security_group", "web", ingress=[
            {"protocol": "tpc", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"]},
            {"protocol": "tcp", "from_port": 443, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"]},
            {"protocol": "tcp", "from_port": 8080, "to_port": 8080, "cidr_blocks": ["0.0.0.0/0"]},
        ]),
        resource("google_compute_firewall", "fw", allow=[{"protocol": "tcp", "ports": ["http"]}]),
        resource("azurerm_network_security_rule", "r", direction="Inbound", access="Allow", protocol="Tcp",
                 source_address_prefix="*"),
    ))  # fmt: skip
    with pytest.raises(SourceError) as raised:
        read_terraform(path)
    text = path.read_text().splitlines()
    problems = raised.value.problems
    assert len(problems) == 4
    messages = [problem.message for problem in problems]
    assert (
        "aws_security_group.web: ingress[0]: unknown protocol 'tpc': use tcp, udp, icmp, icmpv6 or -1"
        in messages
    )
    assert (
        "aws_security_group.web: ingress[1]: ports 443-80 are not a range of ports: from_port <= to_port, 0-65535"
        in messages
    )
    assert (
        "google_compute_firewall.fw: allow[0]: 'http' is not a port or a range: write 22 or 8000-8080"
        in messages
    )
    assert any(
        "no destination_port_range(s): give the ports, or '*' for all" in message for message in messages
    )
    for problem in problems:  # each points at its own block: the line of its opening brace
        assert text[problem.line - 1].strip() == "{", problem
        assert f"{path}:{problem.line}: {problem.message}" in str(raised.value)
    # the good rule between the bad ones is not what failed
    assert len({problem.line for problem in problems}) == 4


def test_a_tcp_rule_for_port_0_only_is_an_error_not_an_empty_range(tmp_path: Path) -> None:
    path = write(tmp_path, plan_of(resource("aws_security_group_rule", "zero", type="ingress", protocol="tcp",
                                            from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"])))  # fmt: skip
    with pytest.raises(SourceError) as raised:
        read_terraform(path)
    assert str(raised.value) == (
        f"{path}:6: aws_security_group_rule.zero: rule: port 0 is no port: give from_port and to_port, "
        'or protocol "-1" for every port'
    )
