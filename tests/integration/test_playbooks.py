"""The collection's playbooks, run by hand the way an operator (or `make demo`) runs them."""

from __future__ import annotations

import ipaddress
import re

import yaml
from conftest import REPO, run_playbook

PLAYBOOKS = REPO / "playbooks"


def test_host_facts_playbook_prints_each_host(lab):
    run = run_playbook(PLAYBOOKS / "host_facts.yml", lab.inventory)
    assert run.rc == 0, run.tail()
    for host in lab.hosts:
        assert re.search(rf'"msg": "{re.escape(host)}: \d+ vcpus, \d+ MiB', run.stdout), run.tail()


def test_instance_playbook_runs_one_instance_per_host_and_deletes_them(lab, tiny_image, prefix):
    instances = [{"name": f"{prefix}-{host}", "host": host} for host in lab.hosts]
    try:
        run = run_playbook(PLAYBOOKS / "instance.yml", lab.inventory, {"instances": instances, **tiny_image})
        assert run.rc == 0, run.tail()
        for inst in instances:
            assert re.search(rf"{inst['host']} {inst['name']}: kvmfleet-guest: ready hostname={inst['name']} "
                             rf"ip=\S+ instance-id={inst['name']}", run.stdout), run.tail()
        again = run_playbook(PLAYBOOKS / "instance.yml", lab.inventory,
                             {"instances": instances, "wait_ready": False, **tiny_image})
        assert again.rc == 0, again.tail()
        assert all(c["changed"] == 0 for c in again.recap().values()), f"second run changed: {again.recap()}"
    finally:
        gone = run_playbook(PLAYBOOKS / "instance.yml", lab.inventory,
                            {"instances": [dict(i, state="absent") for i in instances]})
    assert gone.rc == 0, gone.tail()
    facts = run_playbook(PLAYBOOKS / "host_facts.yml", lab.inventory)
    assert facts.rc == 0 and prefix not in facts.stdout, facts.tail()


def test_unreachable_host_fails_clearly_and_does_not_stop_the_others(lab, tiny_image, prefix, tmp_path):
    """A host entry at an unused lab address: that host is reported unreachable, the others still work."""
    data = yaml.safe_load(lab.inventory.read_text())
    hosts = data["all"]["children"]["kvm_hosts"]["hosts"]
    used = {ipaddress.ip_address(h["ansible_host"]) for h in hosts.values()}
    first = min(used)
    net = ipaddress.ip_network(f"{first}/24", strict=False)
    bogus_addr = next(a for a in reversed(list(net.hosts())) if a not in used)
    hosts["lab-bogus"] = {"ansible_host": str(bogus_addr), "ansible_ssh_common_args":
                          data["all"]["children"]["kvm_hosts"]["vars"]["ansible_ssh_common_args"] + " -o ConnectTimeout=5"}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    real = next(iter(lab.hosts))
    instances = [{"name": f"{prefix}-ok", "host": real}, {"name": f"{prefix}-unreach", "host": "lab-bogus"}]
    try:
        run = run_playbook(PLAYBOOKS / "instance.yml", inventory, {"instances": instances, **tiny_image},
                           limit=f"{real},lab-bogus")
        recap = run.recap()
        assert run.rc != 0, run.tail()
        assert recap["lab-bogus"]["unreachable"] == 1, recap
        assert re.search(rf"lab-bogus\]?:? UNREACHABLE!.*{re.escape(str(bogus_addr))}", run.stdout + run.stderr), run.tail()
        assert recap[real]["failed"] == 0 and recap[real]["unreachable"] == 0, recap
        assert f"{real} {prefix}-ok: kvmfleet-guest: ready" in run.stdout, run.tail()
    finally:
        gone = run_playbook(PLAYBOOKS / "instance.yml", lab.inventory,
                            {"instances": [{"name": f"{prefix}-ok", "host": real, "state": "absent"}]}, limit=real)
    assert gone.rc == 0, gone.tail()


def test_network_playbook_converges_networks_and_filters_per_host_then_removes_them(lab, prefix):
    """networks.yml as the controller's reconciler runs it: a VXLAN network on every host to the others and each
    host's complete port list; the same vars again change nothing; then the networks absent and no ports."""
    hosts = sorted(lab.hosts)
    addr = {h: lab.hosts[h]["ansible_host"] for h in hosts}
    vni = int.from_bytes(prefix.encode(), "big") % 16000000 + 1
    net = {"name": f"kf-{prefix}-pb", "bridge": f"{prefix}p", "type": "vxlan", "segmentation_id": vni,
           "vxlan_device": f"{prefix}q", "mtu": None}
    nets = {h: [dict(net, local_ip=addr[h], remote_ips=[addr[o] for o in hosts if o != h], state="present")]
            for h in hosts}
    ports = {h: {"ports": [{"id": f"{prefix}-{h}", "mac": "52:54:00:7f:00:01", "ips": ["10.197.0.5"],
                            "port_security": True,
                            "rules": [{"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                                       "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": None,
                                       "remote_ips": None}]}]} for h in hosts}
    extra = {"kvmfleet_network_hosts": hosts, "kvmfleet_networks": nets, "kvmfleet_firewalls": ports,
             "kvmfleet_interfaces": {}}
    book = PLAYBOOKS / "network.yml"
    try:
        first = run_playbook(book, lab.inventory, extra)
        assert first.rc == 0, first.tail()
        again = run_playbook(book, lab.inventory, extra)
        assert again.rc == 0, again.tail()
        assert {h: c["changed"] for h, c in again.recap().items()} == {h: 0 for h in hosts}, again.tail()
    finally:
        gone = run_playbook(book, lab.inventory, {
            "kvmfleet_network_hosts": hosts, "kvmfleet_interfaces": {},
            "kvmfleet_networks": {h: [{"name": net["name"], "state": "absent"}] for h in hosts},
            "kvmfleet_firewalls": {h: {"ports": []} for h in hosts}})
    assert gone.rc == 0, gone.tail()
    assert all(c["changed"] == 2 for c in gone.recap().values()), gone.tail()
