"""Sources in an inventory (``inventory/declared.py``): the ports a Compose file, Kubernetes manifests
or a Terraform plan declare become a host's expectations, read live at every load; their problems
are the inventory's, each naming the source file, its line and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ListenerFactory, portcheck, unused_port

from pytest_portcheck.inventory.load import load_inventory, parse_inventory
from pytest_portcheck.inventory.model import Expect, InventoryError
from pytest_portcheck.ports import Protocol

COMPOSE = """\
services:
  web:
    image: nginx
    ports:
      - "8080:80"
      - "127.0.0.1:5432:5432"
      - "8000-8002:80"
  api:
    image: api
    ports: ["9000:9000", "9100"]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_a_compose_file_declares_expected_open_ports_with_their_source_line(tmp_path: Path) -> None:
    write(tmp_path, "deploy/compose.yml", COMPOSE)
    inventory = write(tmp_path, "inventory.yml", """\
        hosts:
          public:
            address: 10.0.0.5
            only_open: {compose: deploy/compose.yml}
          local:
            address: 127.0.0.1
            open: [22, {compose: deploy/compose.yml, services: [web]}]
        """)
    public, local = load_inventory(inventory).hosts
    # At its own address the host publishes what binds every address; the 127.0.0.1 one is not there.
    assert [(e.port, e.expect, e.line) for e in public.expectations] == [
        (8080, Expect.OPEN, 4), (9000, Expect.OPEN, 4)
    ]
    origin = public.expectations[0].declared_at
    assert origin is not None and (origin.path, origin.line) == (str(tmp_path / "deploy/compose.yml"), 5)
    assert public.range_rule is not None and public.range_rule.declared_by == (str(tmp_path / "deploy/compose.yml"),)
    # "8000-8002:80" publishes one of three: allowed by the range, not required.
    assert [(a.first, a.last) for a in public.allowed] == [(8000, 8002)]
    assert not {8000, 8001, 8002, 8080, 9000} & set(public.range_rule.ports)
    assert any("9100/tcp is published on a random host port" in note for note in public.notes)
    # On the loopback address the 127.0.0.1 bind applies too; services: keeps web's ports only.
    assert [e.port for e in local.expectations] == [22, 8080, 5432]
    assert local.expectations[0].declared_at is None


def test_a_port_written_by_hand_applies_and_a_contradiction_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "compose.yml", COMPOSE)
    inventory = write(tmp_path, "inventory.yml", """\
        hosts:
          web:
            address: 10.0.0.5
            only_open: [{compose: compose.yml}, {port: 8080, service: http}]
        """)
    (host,) = load_inventory(inventory).hosts
    by_port = {e.port: e for e in host.expectations}
    assert by_port[8080].service is not None and by_port[8080].declared_at is None
    write(tmp_path, "inventory.yml", """\
        hosts:
          web:
            address: 10.0.0.5
            only_open: [{compose: compose.yml}]
            closed: [9000]
        """)
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory)
    assert "inventory.yml:4: " in str(caught.value)
    assert "/compose.yml:10: service api ports[0] \"9000:9000\" declares tcp/9000 open, but line 5 declares it closed: keep one" in str(caught.value)


def test_source_problems_are_collected_with_the_inventorys_own(tmp_path: Path) -> None:
    write(tmp_path, "compose.yml", """\
        services:
          web:
            ports:
              - "${WEB_PORT}:80"
              - "3000-3005:80-81"
        """)
    write(tmp_path, "plan.json", "{not json")
    inventory = write(tmp_path, "inventory.yml", """\
        hosts:
          web:
            address: 10.0.0.5
            only_open: {compose: compose.yml}
            closd: [1]
          db:
            open: [{compose: missing.yml}, {terraform: plan.json}, {compose: compose.yml, services: [wbe]}]
          fw:
            closed: [{compose: compose.yml}]
        """)
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory)
    lines = str(caught.value).splitlines()
    assert lines[0].endswith(
        f"inventory.yml:4: compose source {tmp_path}/compose.yml:4: service web ports[0]: variable WEB_PORT in '${{WEB_PORT}}' "
        "has no value and no default: set it in the .env file, pass it in the environment, or give a default: "
        "'${WEB_PORT:-VALUE}'"
    )
    assert lines[1].endswith(
        f"inventory.yml:4: compose source {tmp_path}/compose.yml:5: service web: the host range 3000-3005 has 6 ports and "
        "the container range 80-81 has 2: give both sides the same length"
    )
    assert lines[2].endswith("inventory.yml:5: unknown key 'closd' in host 'web': did you mean 'closed'?")
    text = str(caught.value)
    assert f"inventory.yml:7: compose source {tmp_path}/missing.yml: " in text
    assert f"inventory.yml:7: terraform source {tmp_path}/plan.json:1: " in text
    assert "inventory.yml:9: a source declares open ports: list it under open: or only_open:, not closed:" in text


def test_a_service_the_file_does_not_publish_is_refused_with_a_hint(tmp_path: Path) -> None:
    write(tmp_path, "compose.yml", COMPOSE)
    inventory = write(tmp_path, "inventory.yml", """\
        hosts:
          web:
            address: 10.0.0.5
            open: [{compose: compose.yml, services: [wbe], profile: [x]}]
        """)
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory)
    text = str(caught.value)
    assert "inventory.yml:4: unknown key 'profile' in the compose source: did you mean 'profiles'?" in text
    write(tmp_path, "inventory.yml", """\
        hosts:
          web:
            address: 10.0.0.5
            open: [{compose: compose.yml, services: [wbe]}]
        """)
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory)
    assert f"inventory.yml:4: service 'wbe' publishes no port in {tmp_path}/compose.yml: did you mean 'web'?" in str(caught.value)


def test_terraform_rules_map_onto_vantages_by_the_network_they_admit(tmp_path: Path) -> None:
    plan = {
        "format_version": "1.2",
        "planned_values": {"root_module": {"resources": [
            {"address": "aws_security_group.web", "type": "aws_security_group", "name": "web", "values": {
                "ingress": [
                    {"from_port": 443, "to_port": 443, "protocol": "tcp", "cidr_blocks": ["0.0.0.0/0"]},
                    {"from_port": 5432, "to_port": 5432, "protocol": "tcp", "cidr_blocks": ["10.0.0.0/8"]},
                    {"from_port": 0, "to_port": 0, "protocol": "-1", "cidr_blocks": ["192.168.0.0/16"]},
                ],
            }},
        ]}},
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan, indent=1))
    inventory = write(tmp_path, "inventory.yml", """\
        hosts:
          web:
            address: 10.0.0.5
            only_open: {terraform: plan.json}
            from:
              app-subnet:
                open: [{terraform: plan.json, peers: [10.0.0.0/8]}]
        """)
    (host,) = load_inventory(inventory).hosts
    assert [(e.port, e.vantage) for e in host.expectations] == [(443, None), (443, "app-subnet"), (5432, "app-subnet")]
    # Mapped onto app-subnet by its from: entry: no note; the rule for 192.168.0.0/16 maps nowhere.
    assert not any("from 10.0.0.0/8 only" in note for note in host.notes)
    assert any("admits 1-65535/tcp from 192.168.0.0/16 only: checked closed from elsewhere" in note for note in host.notes)
    assert any("all protocols" in note or "-1" in note for note in host.notes), host.notes
    assert all(a.vantage is None or a.vantage == "app-subnet" for a in host.allowed)
    assert 5432 in host.range_rule.ports if host.range_rule else False  # closed from everywhere else
    assert Protocol.TCP in {e.proto for e in host.expectations}


# --- through pytest ----------------------------------------------------------------------------

pytest_plugins = ["pytester"]


def test_pytest_checks_both_directions_of_a_compose_file(pytester: pytest.Pytester, listen: ListenerFactory) -> None:
    declared = listen().getsockname()[1]
    undeclared = listen().getsockname()[1]
    silent = unused_port()
    pytester.makefile(".yml", compose=f"""\
        services:
          web:
            ports:
              - "127.0.0.1:{declared}:80"
              - "{silent}:443"
              - "9100"
        """)
    pytester.makefile(".yml", inventory=f"""\
        hosts:
          web:
            address: 127.0.0.1
            only_open: {{compose: compose.yml}}
            range: "{declared},{undeclared},{silent}/tcp"
        """)
    result = pytester.runpytest("--portcheck", "inventory.yml", "-q", "--tb=short", "-rA")
    result.assert_outcomes(passed=1, failed=2)
    output = result.stdout.str()
    assert f"inventory.yml::web::tcp/{declared}::open" in output  # ids free of @, [ and ::
    assert f"web (127.0.0.1) tcp/{silent}: expected open, found CLOSED — conn-refused" in output
    assert f'— declared by compose.yml:5: service web ports[1] "{silent}:443"' in output
    assert f"{undeclared} (unknown): open, declared by no source (compose.yml)" in output
    # What the file declares but no check can confirm is shown, never taken for "nothing declared".
    assert "compose.yml:6: container port 9100/tcp is published on a random host port" in output


def test_a_one_of_range_allows_one_open_port_and_fails_on_a_second(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    chosen = listen().getsockname()[1]
    pytester.makefile(".yml", compose=f"""\
        services:
          web:
            ports: ["{chosen}-{chosen + 2}:80"]
        """)
    pytester.makefile(".yml", inventory=f"""\
        hosts:
          web:
            address: 127.0.0.1
            only_open: {{compose: compose.yml}}
            range: "{chosen}-{chosen + 2}/tcp"
        """)
    result = pytester.runpytest("--portcheck", "inventory.yml", "-q", "-rA")
    result.assert_outcomes(passed=2)
    assert f"PASSED inventory.yml::web::tcp/{chosen}-{chosen + 2}::one_of" in result.stdout.str()
    # A second listener in the range: the file publishes one port of it, not two.
    try:
        second = listen(port=chosen + 1).getsockname()[1]
    except OSError:
        pytest.skip(f"port {chosen + 1} is taken by another process")
    result = pytester.runpytest("--portcheck", "inventory.yml", "-q", "--tb=short")
    result.assert_outcomes(passed=1, failed=1)
    assert (
        f"web: 2 ports open in tcp/{chosen}-{chosen + 2}, of which compose.yml:3: service web ports[0] "
        f'"{chosen}-{chosen + 2}:80" publishes one: {chosen}, {second}'
    ) in result.stdout.str()


def test_a_range_a_firewall_rule_admits_is_listed_as_allowed_not_required(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    first = listen().getsockname()[1]
    plan = {"format_version": "1.2", "planned_values": {"root_module": {"resources": [
        {"address": "aws_security_group.web", "type": "aws_security_group", "name": "web", "values": {"ingress": [
            {"from_port": first, "to_port": first + 2, "protocol": "tcp", "cidr_blocks": ["0.0.0.0/0"]},
        ]}},
    ]}}}
    (pytester.path / "plan.json").write_text(json.dumps(plan, indent=1))
    pytester.makefile(".yml", inventory=f"""\
        hosts:
          web:
            address: 127.0.0.1
            only_open: {{terraform: plan.json}}
            range: "{first}-{first + 2}/tcp"
        """)
    result = pytester.runpytest("--portcheck", "inventory.yml", "-q", "-rs", "--collect-only")
    assert f"inventory.yml::web::tcp/{first}-{first + 2}::allowed" in result.stdout.str()
    items = pytester.inline_genitems("--portcheck", "inventory.yml")[0]
    assert all("::" not in item.name and all("::" not in node.name for node in item.listchain()[2:]) for item in items)
    result = pytester.runpytest("--portcheck", "inventory.yml", "-q", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    assert (
        f"inventory.yml: web tcp/{first}-{first + 2}: allowed, not required — plan.json:12: aws_security_group.web ingress[0] "
        f"tcp {first}-{first + 2} from 0.0.0.0/0 admits the range: nothing there has to listen"
    ) in result.stdout.str()


def test_a_source_problem_is_a_collection_error_naming_file_line_and_fix(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", compose="""\
        services:
          web:
            ports: ["${WEB_PORT}:80", "3000-3005:80-81"]
        """)
    pytester.makefile(".yml", inventory="""\
        hosts:
          web:
            address: 127.0.0.1
            only_open: {compose: compose.yml}
            open: [22]
        """)
    result = pytester.runpytest("--portcheck", "inventory.yml", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error: nothing ran, nothing passed
    output = result.stdout.str()
    assert "portcheck inventory error: " in output
    assert "inventory.yml:4: compose source compose.yml:3: service web ports[0]: variable WEB_PORT" in output
    assert "give a default: '${WEB_PORT:-VALUE}'" in output
    assert "inventory.yml:4: compose source compose.yml:3: service web: the host range 3000-3005 has 6 ports" in output
    assert "inventory.yml:4: host 'web' has both open: and only_open:: keep one" in output  # collected with them


def test_the_plan_digest_covers_the_ports_a_source_declares(tmp_path: Path) -> None:
    from pytest_portcheck.sharding.plan import WorkPlan, plan_inventory

    write(tmp_path, "compose.yml", 'services:\n  web:\n    ports: ["8080:80"]\n')
    inventory = write(tmp_path, "inventory.yml", """\
        hosts:
          web:
            address: 127.0.0.1
            only_open: {compose: compose.yml}
            range: "1-10000/tcp"
        """)
    yesterday = plan_inventory(load_inventory(inventory))
    # The same units to scan (the range covers both ports), but another declaration: another plan.
    write(tmp_path, "compose.yml", 'services:\n  web:\n    ports: ["9090:80"]\n')
    today = plan_inventory(load_inventory(inventory))
    assert today.total == yesterday.total and today.digest != yesterday.digest
    # A report stores its plan; read back, it hashes to the same digest (or the judge would refuse it).
    assert WorkPlan.from_document(today.to_document()).digest == today.digest


def test_a_shard_report_of_yesterdays_compose_file_does_not_judge_todays(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    port = listen().getsockname()[1]
    pytester.makefile(".yml", compose=f'services:\n  web:\n    ports: ["{port}:80"]\n')
    pytester.makefile(".yml", inventory=f"""\
        hosts:
          web:
            address: 127.0.0.1
            only_open: {{compose: compose.yml}}
            range: "{port}-{port + 1}/tcp"
        """)
    scanned = portcheck("scan", "--inventory", "inventory.yml", "--json", "yesterday.json", cwd=pytester.path)
    assert scanned.returncode == 0, scanned.stderr
    judged = pytester.runpytest("--portcheck", "inventory.yml", "--portcheck-results", "yesterday.json", "-q")
    judged.assert_outcomes(passed=2)
    pytester.makefile(".yml", compose=f'services:\n  web:\n    ports: ["{port}:80", "{port + 1}:81"]\n')
    refused = pytester.runpytest("--portcheck", "inventory.yml", "--portcheck-results", "yesterday.json", "-q")
    refused.assert_outcomes(errors=3)
    refused.stdout.fnmatch_lines(["*refused: it is of another inventory*"])


# --- ports published on 127.0.0.1: open on the host, closed from anywhere else -----------------

SUBNET = "10.81.0"
LOOPBACK_ONLY, EVERYWHERE, UNDECLARED = 15432, 18080, 19000


def state_in(path: Path, address: str, port: int) -> str:
    """What a shard report says of a TCP port: listed, or the usual state of its address."""
    from pytest_portcheck.sharding.report import load_report

    report = load_report(path)
    listed = report.listed.get((address, Protocol.TCP, port))
    if listed is not None:
        return listed.state.value
    (usual,) = [s for (_, at, proto), s in report.usual.items() if at == address and proto is Protocol.TCP]
    return usual.state.value


def test_loopback_ports_are_open_from_the_host_and_closed_from_another_vantage(tmp_path: Path) -> None:
    from conftest import Namespace, joined_namespaces

    write(tmp_path, "compose.yml", f"""\
        services:
          db:
            ports: ["127.0.0.1:{LOOPBACK_ONLY}:5432"]
          web:
            ports: ["{EVERYWHERE}:80"]
        """)
    inventory = write(tmp_path, "inventory.yml", f"""\
        hosts:
          app:                        # from anywhere: the ports bound to every address, nothing else
            address: {SUBNET}.2
            only_open: {{compose: compose.yml}}
            range: "{LOOPBACK_ONLY},{EVERYWHERE},{UNDECLARED}/tcp"
          app-loopback:               # on the host itself: the 127.0.0.1 ones too
            address: 127.0.0.1
            from:
              on-host:
                open: [{{compose: compose.yml}}]
        """)

    def scan(namespace: Namespace, vantage: str, run: str) -> None:
        report = str(tmp_path / f"{run}-{vantage}.json")
        done = namespace.portcheck(
            "scan", "--inventory", str(inventory), "--vantage", vantage, "--run-id", run, "--json", report
        )
        assert done.returncode in (0, 1), done.stderr

    def judge(run: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "--portcheck", str(inventory), "-p", "no:cacheprovider",
             "--portcheck-results", str(tmp_path / f"{run}-*.json"), "-rA", "--tb=short"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip

    with joined_namespaces(SUBNET) as (scanner, target):
        # As the Compose file declares: one on 127.0.0.1, one on every address.
        specs = [f"127.0.0.1:{LOOPBACK_ONLY}", f"0.0.0.0:{EVERYWHERE}"]
        with target.serving(*specs):
            scan(target, "on-host", "r1")
            scan(scanner, "outside", "r1")
            passed = judge("r1")
            assert passed.returncode == 0, passed.stdout
            assert f"PASSED inventory.yml::app-loopback::tcp/{LOOPBACK_ONLY}::open-from-on-host" in passed.stdout
            assert f"PASSED inventory.yml::app::tcp/{EVERYWHERE}::open" in passed.stdout
            range_id = f"inventory.yml::app::tcp/{LOOPBACK_ONLY},{EVERYWHERE},{UNDECLARED}::only_open"
            assert f"PASSED {range_id}" in passed.stdout
            outside, on_host = tmp_path / "r1-outside.json", tmp_path / "r1-on-host.json"
            assert state_in(outside, f"{SUBNET}.2", LOOPBACK_ONLY) == "closed"  # the other vantage: closed
            assert state_in(outside, f"{SUBNET}.2", EVERYWHERE) == "open"
            assert state_in(on_host, "127.0.0.1", LOOPBACK_ONLY) == "open"  # the host itself: open
        # A listener the file does not declare fails, from every vantage that reaches it.
        with target.serving(*specs, f"0.0.0.0:{UNDECLARED}"):
            scan(target, "on-host", "r2")
            scan(scanner, "outside", "r2")
            failed = judge("r2")
    assert failed.returncode == 1, failed.stdout
    assert f"FAILED {range_id}" in failed.stdout
    assert f"from outside: app: 1 unexpected open port(s) in tcp/{LOOPBACK_ONLY},{EVERYWHERE},{UNDECLARED}: {UNDECLARED}" in failed.stdout
    assert "open, declared by no source (compose.yml)" in failed.stdout


# --- portcheck declared: a source printed as an inventory to review ----------------------------


def test_portcheck_declared_prints_an_inventory_that_passes_against_the_same_listeners(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    web, db = listen().getsockname()[1], listen().getsockname()[1]
    pytester.makefile(".yml", compose=f"""\
        services:
          web:
            ports: ["{web}:80", "9100"]
          db:
            ports:
              - target: 5432
                published: "{db}"
                host_ip: 127.0.0.1
        """)
    printed = portcheck(
        "declared", "compose", "compose.yml", "--range", f"{web},{db}/tcp", "--name", "app", cwd=pytester.path
    )
    assert printed.returncode == 0, printed.stderr
    text = printed.stdout
    assert f'- "{web}/tcp"  # compose.yml:3: service web ports[0] "{web}:80"' in text
    assert "# compose.yml:6: service db ports[0]" in text and "not checked: compose.yml:3: container port 9100/tcp" in text
    (pytester.path / "printed.yml").write_text(text)
    result = pytester.runpytest("--portcheck", "printed.yml", "-q")
    result.assert_outcomes(passed=3)


def test_portcheck_declared_refuses_bad_input_naming_file_line_and_fix(tmp_path: Path) -> None:
    write(tmp_path, "compose.yml", 'services:\n  web:\n    ports: ["${PORT}:80", "3000-3005:80-81"]\n')
    plan = {"format_version": "1.2", "planned_values": {"root_module": {"resources": [
        {"address": "aws_security_group_rule.all", "type": "aws_security_group_rule", "name": "all", "values": {
            "type": "ingress", "from_port": 0, "to_port": 0, "protocol": "-1", "cidr_blocks": ["0.0.0.0/0"],
            "security_group_id": "sg-1",
        }},
    ]}}}
    (tmp_path / "plan.json").write_text(json.dumps(plan, indent=1))
    (tmp_path / "broken.json").write_text('{"format_version": "1.2",\n "planned_values": [}\n')
    done = portcheck("declared", "compose", "compose.yml", "gone.yml", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    errors = done.stderr.splitlines()
    assert errors[0].startswith("portcheck: error: compose source compose.yml:3: service web ports[0]: variable PORT")
    assert errors[0].endswith("give a default: '${PORT:-VALUE}'")
    assert "compose source compose.yml:3: service web: the host range 3000-3005 has 6 ports and the container range 80-81 has 2: give both sides the same length" in done.stderr
    assert "compose source gone.yml: the Compose file does not exist: check the path" in done.stderr
    broken = portcheck("declared", "terraform", "broken.json", cwd=tmp_path)
    assert broken.returncode == 2 and "terraform source broken.json:2: " in broken.stderr
    # protocol -1: every port, said so, and declared as the whole range (allowed, not required).
    everything = portcheck("declared", "terraform", "plan.json", cwd=tmp_path)
    assert everything.returncode == 0, everything.stderr
    assert "# allowed, not required: 1-65535/tcp" in everything.stdout
    assert "# allowed, not required: 1-65535/udp" in everything.stdout
    assert "not checked: plan.json:" in everything.stdout


def test_kubernetes_ports_land_on_the_nodes_and_the_load_balancer_the_inventory_names(tmp_path: Path) -> None:
    write(tmp_path, "manifests.yml", """\
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop}
        spec:
          type: LoadBalancer
          allocateLoadBalancerNodePorts: false
          selector: {app: web}
          ports: [{port: 443, targetPort: 8443}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: admin, namespace: shop}
        spec:
          type: NodePort
          selector: {app: admin}
          ports: [{port: 80, nodePort: 30080}]
        """)
    inventory = write(tmp_path, "inventory.yml", """\
        hosts:
          lb:
            address: 10.0.0.9
            only_open: {kubernetes: manifests.yml, addresses: {Service/shop/web: [10.0.0.9]}, node_addresses: [10.0.0.5]}
          node:
            address: 10.0.0.5
            only_open: {kubernetes: manifests.yml, addresses: {Service/shop/web: [10.0.0.9]}, node_addresses: [10.0.0.5]}
        """)
    lb, node = load_inventory(inventory).hosts
    assert [e.port for e in lb.expectations] == [443]
    assert [e.port for e in node.expectations] == [30080]
    origin = node.expectations[0].declared_at
    assert origin is not None and (origin.line, origin.entry) == (16, "Service shop/admin spec.ports[0] nodePort 30080")


def test_portcheck_declared_puts_node_ports_on_each_node(tmp_path: Path) -> None:
    write(tmp_path, "manifests.yml", """\
        apiVersion: v1
        kind: Service
        metadata: {name: admin, namespace: shop}
        spec:
          type: NodePort
          selector: {app: admin}
          ports: [{port: 80, nodePort: 30080}]
        """)
    done = portcheck(
        "declared", "kubernetes", "manifests.yml", "--node-address", "10.0.0.5", "--node-address", "10.0.0.6",
        "--name", "node", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    hosts = parse_inventory(done.stdout, tmp_path / "printed.yml").hosts
    assert [(h.address, [e.port for e in h.expectations]) for h in hosts] == [("10.0.0.5", [30080]), ("10.0.0.6", [30080])]
    assert "# manifests.yml:7: Service shop/admin spec.ports[0] nodePort 30080" in done.stdout


def test_the_plan_scans_a_one_of_range_so_that_judge_mode_can_check_it(tmp_path: Path) -> None:
    from pytest_portcheck.sharding.plan import plan_inventory

    write(tmp_path, "compose.yml", 'services:\n  web:\n    ports: ["8000-8002:80", "9000:9000"]\n')
    inventory = write(tmp_path, "inventory.yml", """\
        hosts:
          web:
            address: 127.0.0.1
            only_open: {compose: compose.yml}
            range: "1-100/tcp"
        """)
    plan = plan_inventory(load_inventory(inventory))
    (host,) = plan.hosts
    assert host.spec() == "1-100/tcp,8000-8002/tcp,9000/tcp"
