"""Seed contents (NoCloud and config drive) and the seed disks built from them with the real tools."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.kvmfleet.compute.plugins.module_utils._disks import create_seed, seed_files
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError
from ansible_collections.kvmfleet.compute.plugins.module_utils._seed import (
    network_config_v2,
    validate_seed_options,
)

KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBw0cNnBR8ZcV0aSzCNkKp1H2b9mA1eK0aG6m8xgq5JR alice@example"
KEY2 = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== bob "the" \\builder: #1 é'
NETWORK_DATA = {
    "links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": "52:54:00:AA:BB:01", "mtu": 1450},
              {"id": "tap1", "type": "phy", "ethernet_mac_address": "52:54:00:aa:bb:02"}],
    "networks": [
        {"id": "network0", "type": "ipv4", "link": "tap0", "ip_address": "192.168.122.50", "netmask": "255.255.255.0",
         "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.168.122.1"}],
         "network_id": "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab"},
        {"id": "network1", "type": "ipv4_dhcp", "link": "tap1"},
    ],
    "services": [{"type": "dns", "address": "192.168.122.1"}],
}


def run(args):
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_nocloud_without_options_is_todays_seed():
    assert seed_files("web1", "i-1", None) == {"meta-data": "instance-id: i-1\nlocal-hostname: web1\n",
                                               "user-data": ""}


def test_nocloud_public_keys_are_a_yaml_list_of_the_key_lines():
    files = seed_files("web1", "i-1", "", public_keys={"alice": KEY1, "bob": KEY2})
    meta = yaml.safe_load(files["meta-data"])
    assert meta == {"instance-id": "i-1", "local-hostname": "web1", "public-keys": [KEY1, KEY2]}
    # Each key on one "  - <double-quoted>" line: what the guest's parser reads.
    lines = files["meta-data"].splitlines()
    assert lines[2:] == ["public-keys:", f"  - {json.dumps(KEY1)}", f"  - {json.dumps(KEY2, ensure_ascii=False)}"]


def test_nocloud_network_data_and_network_config():
    files = seed_files("web1", "i-1", "", network_data=NETWORK_DATA)
    written = json.loads(files["network_data.json"])
    assert written["links"][0]["ethernet_mac_address"] == "52:54:00:aa:bb:01"  # normalised to lower case
    assert written["networks"] == NETWORK_DATA["networks"]
    assert yaml.safe_load(files["network-config"]) == {"version": 2, "ethernets": {
        "tap0": {"match": {"macaddress": "52:54:00:aa:bb:01"}, "mtu": 1450, "addresses": ["192.168.122.50/24"],
                 "routes": [{"to": "default", "via": "192.168.122.1"}],
                 "nameservers": {"addresses": ["192.168.122.1"]}},
        "tap1": {"match": {"macaddress": "52:54:00:aa:bb:02"}, "dhcp4": True,
                 "nameservers": {"addresses": ["192.168.122.1"]}},
    }}


def test_config_drive_meta_data_as_nova_writes_it():
    files = seed_files("web1", "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab", "#!/bin/sh\necho hi\n", fmt="config-drive",
                       public_keys={"alice": KEY1}, network_data=NETWORK_DATA,
                       meta_data={"name": "web one", "availability_zone": "nova", "project_id": "p1",
                                  "launch_index": 0, "meta": {"role": "web"}})
    assert sorted(files) == ["openstack/latest/meta_data.json", "openstack/latest/network_data.json",
                             "openstack/latest/user_data"]
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta == {"uuid": "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab", "hostname": "web1", "name": "web one",
                    "public_keys": {"alice": KEY1}, "keys": [{"name": "alice", "type": "ssh", "data": KEY1}],
                    "availability_zone": "nova", "project_id": "p1", "launch_index": 0, "meta": {"role": "web"}}
    assert json.loads(files["openstack/latest/network_data.json"])["services"] == NETWORK_DATA["services"]
    assert files["openstack/latest/user_data"] == "#!/bin/sh\necho hi\n"


def test_config_drive_defaults():
    files = seed_files("web1", "i-1", None, fmt="config-drive")
    assert json.loads(files["openstack/latest/meta_data.json"]) == {
        "uuid": "i-1", "hostname": "web1", "name": "web1", "public_keys": {}, "keys": []}
    assert json.loads(files["openstack/latest/network_data.json"]) == {"links": [], "networks": [], "services": []}
    assert "openstack/latest/user_data" not in files


@pytest.mark.parametrize("options, message", [
    ({"format": "ec2"}, "format must be one of"),
    ({"public_keys": {"k": KEY1 + "\nssh-ed25519 AAAA evil"}}, "one line of text without control characters"),
    ({"public_keys": {"k": "ssh-ed25519 AAAA\x1b[2J"}}, "control characters"),
    ({"public_keys": {"k": "not a key"}}, "not an OpenSSH public key line"),
    ({"public_keys": {"k": 'command="rm -rf /" ' + KEY1}}, "not an OpenSSH public key line"),
    ({"public_keys": {"bad name\n": KEY1}}, "public_keys name"),
    ({"public_keys": ["ssh-ed25519 AAAA"]}, "must be a mapping"),
    ({"network_data": {"links": [{"id": "l", "ethernet_mac_address": "zz"}]}}, "is not a MAC address"),
    ({"network_data": {"links": [{"id": "l", "ethernet_mac_address": "52:54:00:00:00:01", "mtu": 9}]}}, "mtu"),
    ({"network_data": {"networks": [{"type": "ipv4", "link": "nope"}]}}, "names no entry of links"),
    ({"network_data": {"links": [{"id": "l", "ethernet_mac_address": "52:54:00:00:00:01"}],
                       "networks": [{"type": "ipv4", "link": "l", "ip_address": "10.0.0.300",
                                     "netmask": "255.255.255.0"}]}}, "is not an IPv4 address"),
    ({"network_data": {"links": [{"id": "l", "ethernet_mac_address": "52:54:00:00:00:01"}],
                       "networks": [{"type": "ipv4", "link": "l", "ip_address": "10.0.0.3",
                                     "netmask": "255.0.255.0"}]}}, "is not an IPv4 netmask"),
    ({"network_data": {"services": [{"type": "dns", "address": "8.8.8.8\nnameserver 1.2.3.4"}]}}, "control"),
    ({"network_data": {"services": [{"type": "dns", "address": "dns.example"}]}}, "is not an IP address"),
    ({"meta_data": {"uuid": "x"}}, "may not set uuid"),
    ({"meta_data": {"public_keys": {}}}, "may not set public_keys"),
])
def test_bad_seed_options_are_refused(options, message):
    with pytest.raises(ValidationError, match=message):
        validate_seed_options(options)


def test_ipv6_networks_and_dns_pass_through_as_the_controller_writes_them():
    doc = {"links": [{"id": "tap0", "type": "bridge", "ethernet_mac_address": "52:54:00:00:00:01", "mtu": None,
                      "vif_id": None}],
           "networks": [{"id": "network0", "type": "ipv6", "link": "tap0", "ip_address": "fd00::5",
                         "netmask": "ffff:ffff:ffff:ffff::",
                         "routes": [{"network": "::", "netmask": "::", "gateway": "fd00::1"}]}],
           "services": [{"type": "dns", "address": "fd00::1"}]}
    files = seed_files("web1", "i-1", None, fmt="config-drive", network_data=doc)
    assert json.loads(files["openstack/latest/network_data.json"]) == doc


def test_network_config_skips_links_without_a_mac():
    doc = {"links": [{"id": "vlan0", "type": "vlan"}], "networks": [{"type": "ipv4_dhcp", "link": "vlan0"}]}
    validate_seed_options({"network_data": doc})
    assert network_config_v2(doc) == {"version": 2, "ethernets": {}}


def _label(path):
    return subprocess.check_output(["blkid", "-o", "value", "-s", "LABEL", str(path)], text=True).strip()


@pytest.mark.skipif(not shutil.which("genisoimage") or not shutil.which("isoinfo"), reason="genisoimage missing")
def test_config_drive_iso(tmp_path):
    path = tmp_path / "disk.config"
    create_seed(run, str(path), "web1", "i-1", "echo hi", fmt="config-drive", public_keys={"alice": KEY1},
                network_data=NETWORK_DATA)
    assert _label(path) == "config-2"
    meta = subprocess.check_output(["isoinfo", "-i", str(path), "-R", "-x", "/openstack/latest/meta_data.json"],
                                   text=True)
    assert json.loads(meta)["public_keys"] == {"alice": KEY1}
    net = subprocess.check_output(["isoinfo", "-i", str(path), "-R", "-x", "/openstack/latest/network_data.json"],
                                  text=True)
    assert json.loads(net)["networks"][0]["ip_address"] == "192.168.122.50"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.config"]


@pytest.mark.skipif(not shutil.which("mkfs.vfat") or not shutil.which("mcopy"), reason="dosfstools/mtools missing")
def test_config_drive_vfat_when_genisoimage_is_missing(tmp_path):
    path = tmp_path / "disk.config"

    def which(tool):
        return None if tool == "genisoimage" else shutil.which(tool)

    create_seed(run, str(path), "web1", "i-2", None, which=which, fmt="config-drive", public_keys={"alice": KEY1})
    assert _label(path).lower() == "config-2"
    meta = subprocess.check_output(["mtype", "-i", str(path), "::openstack/latest/meta_data.json"], text=True)
    assert json.loads(meta)["uuid"] == "i-2"


@pytest.mark.skipif(not shutil.which("genisoimage") or not shutil.which("isoinfo"), reason="genisoimage missing")
def test_nocloud_iso_with_network_data(tmp_path):
    path = tmp_path / "disk.config"
    create_seed(run, str(path), "web1", "i-3", "", public_keys={"alice": KEY1}, network_data=NETWORK_DATA)
    assert _label(path) == "cidata"
    listing = subprocess.check_output(["isoinfo", "-i", str(path), "-R", "-f"], text=True).split()
    assert sorted(listing) == ["/meta-data", "/network-config", "/network_data.json", "/user-data"]


# ------------------------------------------------------------------------- the guest's seed parsers
# The tiny image's awk programs run here under the host's busybox, on exactly what the seed writer writes.

BUSYBOX = shutil.which("busybox")
IMAGES = Path(__file__).resolve().parents[4] / "controller" / "kvmfleet" / "images"
META_AWK, JSON_AWK = IMAGES / "tiny_meta.awk", IMAGES / "tiny_json.awk"
KEYS = {"alice": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBw0cNnBR8ZcV0aSzCNkKp1H2b9mA1eK0aG6m8xgq5JR alice@example",
        "bob": 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== bob "the" \\builder: #1 \u00e9'}


def _awk(script, text: str, tmp_path) -> subprocess.CompletedProcess:
    src = tmp_path / "input"
    src.write_text(text, encoding="utf-8")
    return subprocess.run([BUSYBOX, "awk", "-f", str(script), str(src)], capture_output=True, text=True, check=False)


@pytest.mark.skipif(BUSYBOX is None, reason="busybox not installed")
def test_guest_reads_the_public_keys_of_a_nocloud_seed(tmp_path):
    meta = seed_files("h", "i-1", "", public_keys=KEYS)["meta-data"]
    assert _awk(META_AWK, meta, tmp_path).stdout.splitlines() == list(KEYS.values())
    # What other NoCloud seeds write: a mapping, plain and single-quoted values, one key inline.
    other = "public-keys:\n  a: ssh-ed25519 AAAA a@b\n  b: 'ssh-ed25519 BBBB it''s'\nlocal-hostname: x\n"
    assert _awk(META_AWK, other, tmp_path).stdout.splitlines() == ["ssh-ed25519 AAAA a@b", "ssh-ed25519 BBBB it's"]
    assert _awk(META_AWK, "public-keys: ssh-ed25519 CCCC\n", tmp_path).stdout == "ssh-ed25519 CCCC\n"


@pytest.mark.skipif(BUSYBOX is None, reason="busybox not installed")
def test_guest_flattens_the_json_of_a_config_drive(tmp_path):
    network = {"links": [{"id": "tap0", "ethernet_mac_address": "52:54:00:00:00:01", "mtu": 1400}],
               "networks": [{"id": "n0", "type": "ipv4", "link": "tap0", "ip_address": "10.0.0.5",
                             "netmask": "255.255.255.0",
                             "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"}]}],
               "services": [{"type": "dns", "address": "10.0.0.1"}]}
    files = seed_files("web1", "i-1", None, fmt="config-drive", public_keys=KEYS, network_data=network,
                       meta_data={"meta": {"empty": None, "flag": True, "list": []}})
    flat = _awk(JSON_AWK, files["openstack/latest/meta_data.json"], tmp_path)
    assert flat.returncode == 0, flat.stderr
    got = dict(line.split("\t", 1) for line in flat.stdout.splitlines())
    assert got["uuid"] == "i-1" and got["hostname"] == "web1"
    assert got["public_keys/alice"] == KEYS["alice"] and got["public_keys/bob"] == KEYS["bob"]
    assert got["keys/1/data"] == KEYS["bob"] and got["keys/1/type"] == "ssh"
    assert (got["meta/empty"], got["meta/flag"]) == ("", "true")
    flat = _awk(JSON_AWK, files["openstack/latest/network_data.json"], tmp_path)
    assert flat.stdout.splitlines() == [
        "links/0/ethernet_mac_address\t52:54:00:00:00:01", "links/0/id\ttap0", "links/0/mtu\t1400",
        "networks/0/id\tn0", "networks/0/ip_address\t10.0.0.5", "networks/0/link\ttap0",
        "networks/0/netmask\t255.255.255.0", "networks/0/routes/0/gateway\t10.0.0.1",
        "networks/0/routes/0/netmask\t0.0.0.0", "networks/0/routes/0/network\t0.0.0.0", "networks/0/type\tipv4",
        "services/0/address\t10.0.0.1", "services/0/type\tdns"]
    bad = _awk(JSON_AWK, '{"a": [1, 2', tmp_path)
    assert (bad.returncode, bad.stdout) == (1, "") and "invalid JSON" in bad.stderr
