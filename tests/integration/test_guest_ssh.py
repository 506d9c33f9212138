"""Key pairs that open a guest: the tiny image on a lab host, its seed carrying a public key and Nova's
network_data.json, and an SSH login from inside the lab host's network namespace (the only place with a
route to the host's libvirt `default` network). Real guests, real packets, nothing mocked.

Three guests, booted side by side: a config drive with a DHCP link, a config drive with a static
address (MTU, default route, DNS), and a NoCloud seed with public-keys.
"""

from __future__ import annotations

import ipaddress
import random
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import LAB_ROOT, run_playbook

READY = re.compile(r"kvmfleet-guest: ready hostname=(?P<hostname>\S+) ip=(?P<ip>\S+) instance-id=(?P<iid>\S+)")
HOSTKEY = re.compile(r"kvmfleet-guest: ssh-host-key (?P<key>ssh-ed25519 \S+) keys=(?P<keys>\d+)")

PLAYBOOK = """
- name: Tiny guests with SSH keys and network data in their seeds
  hosts: "{{ target }}"
  gather_facts: false
  tasks:
    - name: Put the tiny image in the host's cache
      kvmfleet.compute.image:
        name: "{{ prefix }}-tiny.qcow2"
        src: "{{ image_src }}"
        sha256: "{{ image_sha256 }}"
        format: qcow2
      when: state != 'absent'

    - name: The guests
      kvmfleet.compute.domain:
        name: "{{ item.name }}"
        state: "{{ state }}"
        virt_type: qemu
        vcpus: 1
        memory_mb: 192
        root_disk: {image: "{{ prefix }}-tiny.qcow2", size_gb: 1}
        nics: [{network: default, mac: "{{ item.mac }}"}]
        config_drive: "{{ item.config_drive }}"
      loop: "{{ guests }}"
      loop_control: {label: "{{ item.name }}"}

    - name: Wait for the ready lines
      ansible.builtin.wait_for:
        path: /var/lib/libvirt/kvmfleet/instances/{{ item.name }}/console.log
        search_regex: "kvmfleet-guest: ready hostname="
        timeout: 300
      loop: "{{ guests }}"
      loop_control: {label: "{{ item.name }}"}
      when: state != 'absent'

    - name: Read the serial logs
      ansible.builtin.slurp:
        path: /var/lib/libvirt/kvmfleet/instances/{{ item.name }}/console.log
      loop: "{{ guests }}"
      loop_control: {label: "{{ item.name }}"}
      register: logs
      when: state != 'absent'

    - name: Keep them on the controller
      ansible.builtin.copy:
        content: "{{ item.content | b64decode }}"
        dest: "{{ out_dir }}/{{ item.item.name }}.log"
        mode: "0600"
      loop: "{{ logs.results }}"
      loop_control: {label: "{{ item.item.name }}"}
      delegate_to: localhost
      when: state != 'absent'
"""


def _keypair(directory: Path, name: str) -> tuple[Path, str]:
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@kvmfleet-test", "-f", str(key)],
                   check=True)
    return key, (directory / f"{name}.pub").read_text().strip()


def _mac() -> str:
    return "52:54:00:" + ":".join(f"{octet:02x}" for octet in random.randbytes(3))


@pytest.fixture(scope="module")
def lab_host(collection_link):
    import os

    name = os.environ.get("KVMFLEET_LAB")
    if not name:
        pytest.fail("KVMFLEET_LAB is not set: name the lab to test against (kvmfleet lab up --name NAME)")
    inventory = LAB_ROOT / name / "hosts.yml"
    if not inventory.is_file():
        pytest.fail(f"lab {name!r} has no inventory at {inventory}: run `kvmfleet lab up --name {name}`")
    hosts = yaml.safe_load(inventory.read_text())["all"]["children"]["kvm_hosts"]["hosts"]
    host, hv = next(iter(hosts.items()))
    return {"inventory": inventory, "name": host, "netns": hv["kvmfleet_lab_netns"]}


@pytest.fixture(scope="module")
def guests(lab_host, tiny_image, tmp_path_factory):
    """Boot the three guests once; yield what each was given and its serial log; delete them after."""
    tmp = tmp_path_factory.mktemp("guest-ssh")
    prefix = "it" + "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=6))
    key, pub = _keypair(tmp, "allowed")
    other = _keypair(tmp, "other")[0]
    static_ip = str(ipaddress.ip_address("192.168.122.200") + random.randrange(50))
    cases = {}
    dhcp_mac, static_mac, nocloud_mac = _mac(), _mac(), _mac()
    cases["dhcp"] = {"name": f"{prefix}-dhcp", "mac": dhcp_mac, "config_drive": {
        "format": "config-drive", "hostname": f"{prefix}-dhcp", "public_keys": {"allowed": pub},
        "meta_data": {"availability_zone": "nova", "launch_index": 0, "meta": {"case": "dhcp"}},
        "network_data": {"links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": dhcp_mac}],
                         "networks": [{"id": "network0", "type": "ipv4_dhcp", "link": "tap0"}]}}}
    cases["static"] = {"name": f"{prefix}-static", "mac": static_mac, "static_ip": static_ip, "config_drive": {
        "format": "config-drive", "hostname": f"{prefix}-static", "public_keys": {"allowed": pub},
        "network_data": {
            "links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": static_mac, "mtu": 1400}],
            "networks": [{"id": "network0", "type": "ipv4", "link": "tap0", "ip_address": static_ip,
                          "netmask": "255.255.255.0",
                          "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.168.122.1"}]}],
            "services": [{"type": "dns", "address": "192.168.122.1"}]}}}
    cases["nocloud"] = {"name": f"{prefix}-nocloud", "mac": nocloud_mac, "config_drive": {
        "hostname": f"{prefix}-nocloud", "public_keys": {"allowed": pub}}}
    extra = {"target": lab_host["name"], "prefix": prefix, "guests": list(cases.values()), "out_dir": str(tmp),
             **tiny_image}
    playbook = tmp / "guests.yml"
    playbook.write_text(PLAYBOOK)
    try:
        run = run_playbook(playbook, lab_host["inventory"], {**extra, "state": "running"})
        assert run.rc == 0, run.tail()
        for case in cases.values():
            case["serial"] = (tmp / f"{case['name']}.log").read_text()
        yield {"cases": cases, "key": key, "other": other, "tmp": tmp, "netns": lab_host["netns"]}
    finally:
        gone = run_playbook(playbook, lab_host["inventory"], {**extra, "state": "absent"})
        assert gone.rc == 0, gone.tail()


def _ssh(guests, case, key, command, ip=None):
    serial = case["serial"]
    ready = READY.search(serial)
    assert ready, serial[-3000:]
    ip = ip or ready["ip"]
    hostkey = HOSTKEY.search(serial)
    assert hostkey, serial[-3000:]
    known = guests["tmp"] / f"known_hosts.{case['name']}"
    known.write_text(f"{ip} {hostkey['key']}\n")  # the key the guest announced on its console
    argv = ["ip", "netns", "exec", guests["netns"], "ssh", "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-o", "ConnectTimeout=20",
            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", f"root@{ip}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.parametrize("which", ["dhcp", "static", "nocloud"])
def test_the_seeds_key_logs_in_as_root(guests, which):
    case = guests["cases"][which]
    ready = READY.search(case["serial"])
    assert ready and ready["hostname"] == case["name"], case["serial"][-3000:]
    assert HOSTKEY.search(case["serial"])["keys"] == "1"
    ipaddress.ip_address(ready["ip"])  # an address, not "none"
    proc = _ssh(guests, case, guests["key"], "hostname; id -u; cat /sys/class/net/eth0/address")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [case["name"], "0", case["mac"]]


@pytest.mark.parametrize("which", ["dhcp", "nocloud"])
def test_another_key_is_refused(guests, which):
    proc = _ssh(guests, guests["cases"][which], guests["other"], "true")
    assert proc.returncode == 255, (proc.stdout, proc.stderr)
    assert "Permission denied (publickey)" in proc.stderr


def test_static_address_mtu_route_and_dns_from_network_data(guests):
    case = guests["cases"]["static"]
    assert READY.search(case["serial"])["ip"] == case["static_ip"]
    proc = _ssh(guests, case, guests["key"],
                "cat /sys/class/net/eth0/mtu; ip route show default; cat /etc/resolv.conf; ls /run/udhcpc.eth0.pid")
    assert proc.returncode != 0  # no udhcpc pid file: nothing ran DHCP on eth0
    lines = proc.stdout.splitlines()
    assert lines[0] == "1400", proc.stdout
    assert lines[1].startswith("default via 192.168.122.1 dev eth0"), proc.stdout
    assert "nameserver 192.168.122.1" in lines[2:], proc.stdout


def test_config_drive_meta_data_reaches_the_guest(guests):
    case = guests["cases"]["dhcp"]
    proc = _ssh(guests, case, guests["key"], "cat /run/meta_data.flat")
    assert proc.returncode == 0, proc.stderr
    flat = dict(line.split("\t", 1) for line in proc.stdout.splitlines())
    assert flat["hostname"] == case["name"]
    assert flat["availability_zone"] == "nova"
    assert flat["meta/case"] == "dhcp"
    assert flat["keys/0/type"] == "ssh"
    assert flat["public_keys/allowed"] == case["config_drive"]["public_keys"]["allowed"]
