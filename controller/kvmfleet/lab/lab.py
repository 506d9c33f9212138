"""The one-machine lab: N real compute hosts made of Linux namespaces.

Each lab host is a network namespace (its own address on the lab bridge, no default route), a
persistent mount namespace (private /etc/libvirt, /var/lib/libvirt, /var/log/libvirt, /run/libvirt,
/etc/ssh, /root/.ssh, /etc/hosts, a sysfs of its own netns) and a UTS namespace (hostname lab-hN).
In it run sshd, virtlogd and libvirtd, started here with pid files in the host's state directory.
`down` stops exactly those (and the QEMU / dnsmasq children libvirtd started, found by the pid files
libvirtd keeps in the host's private /run/libvirt) after checking each pid still lives in the lab's
network namespace, then removes namespaces, bridge and state.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

LAB_ROOT = Path(os.environ.get("KVMFLEET_LAB_ROOT", "/var/lib/kvmfleet-lab"))
NS_ROOT = Path(os.environ.get("KVMFLEET_LAB_NS_ROOT", "/run/kvmfleet-lab"))
DEFAULT_POOL = "10.250.0.0/16"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
HOST_OFFSET = 10  # lab-h1 gets .11, the bridge .1

# Bind-mounted per host inside its mount namespace: target -> state subdirectory.
PRIVATE_DIRS = {
    "/etc/libvirt": "etc-libvirt",
    "/var/lib/libvirt": "lib-libvirt",
    "/var/log/libvirt": "log-libvirt",
    "/run/libvirt": "run-libvirt",
    "/etc/ssh": "etc-ssh",
}


class LabError(Exception):
    """A lab operation failed; the message says which step and why."""


@dataclass
class LabHost:
    name: str
    index: int
    address: str
    netns: str
    veth: str
    state: str  # state directory

    @property
    def state_dir(self) -> Path:
        return Path(self.state)


@dataclass
class Lab:
    name: str
    subnet: str
    bridge: str
    hosts: list[LabHost] = field(default_factory=list)
    created: float = 0.0

    # -- paths -------------------------------------------------------------
    @property
    def root(self) -> Path:
        return LAB_ROOT / self.name

    @property
    def ns_dir(self) -> Path:
        return NS_ROOT / self.name

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def key_file(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.root / "hosts.yml"

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    def mnt_file(self, host: LabHost) -> Path:
        return self.ns_dir / f"{host.name}.mnt"

    def uts_file(self, host: LabHost) -> Path:
        return self.ns_dir / f"{host.name}.uts"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Lab:
        hosts = [LabHost(**h) for h in data.pop("hosts", [])]
        return cls(hosts=hosts, **data)


# -- small helpers -------------------------------------------------------------

def _run(cmd: list[str], check: bool = True, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def validate_lab_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise LabError(f"invalid lab name {name!r}: 1-8 characters, lowercase letters and digits, starting with a letter")
    return name


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _netns_inode(netns: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{netns}").st_ino
    except OSError:
        return None


def _pid_in_netns(pid: int, ns_inode: int | None) -> bool:
    """True when pid is alive and lives in the given network namespace (guards against pid reuse)."""
    if ns_inode is None:
        return False
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == ns_inode
    except OSError:
        return False


def _in_host(lab: Lab, host: LabHost, cmd: list[str]) -> list[str]:
    return [
        "nsenter", f"--net=/run/netns/{host.netns}", f"--mount={lab.mnt_file(host)}",
        f"--uts={lab.uts_file(host)}", "--", *cmd,
    ]


def load(name: str) -> Lab | None:
    path = LAB_ROOT / name / "lab.json"
    if not path.exists():
        return None
    try:
        return Lab.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise LabError(f"lab {name}: unreadable {path}: {exc}") from exc


def _save(lab: Lab) -> None:
    lab.root.mkdir(parents=True, exist_ok=True)
    tmp = lab.root / "lab.json.tmp"
    tmp.write_text(json.dumps(lab.to_json(), indent=2))
    tmp.rename(lab.root / "lab.json")


def _used_subnets(exclude: str) -> set[str]:
    used = set()
    if LAB_ROOT.exists():
        for entry in LAB_ROOT.iterdir():
            if entry.name == exclude:
                continue
            meta = entry / "lab.json"
            if meta.exists():
                try:
                    used.add(json.loads(meta.read_text())["subnet"])
                except (ValueError, KeyError):
                    continue
    # Addresses already on this machine's interfaces (root namespace).
    out = _run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
    for match in re.finditer(r"inet (\S+)", out):
        used.add(str(ipaddress.ip_interface(match.group(1)).network))
    return used


def _pick_subnet(name: str, pool: str) -> str:
    used = [ipaddress.ip_network(s) for s in _used_subnets(name)]
    for candidate in ipaddress.ip_network(pool).subnets(new_prefix=24):
        if candidate.network_address.packed[-2] == 0:
            continue  # skip x.y.0.0/24: easy to mistake for the pool itself
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise LabError(f"no free /24 left in the lab pool {pool}")


def plan(name: str, hosts: int, subnet: str | None = None, pool: str = DEFAULT_POOL) -> Lab:
    validate_lab_name(name)
    if not 1 <= hosts <= 50:
        raise LabError(f"--hosts must be between 1 and 50, got {hosts}")
    existing = load(name)
    if subnet is None:
        subnet = existing.subnet if existing else _pick_subnet(name, pool)
    net = ipaddress.ip_network(subnet)
    if net.prefixlen > 26:
        raise LabError(f"lab subnet {subnet} is too small")
    lab = Lab(name=name, subnet=str(net), bridge=f"kfbr-{name}", created=time.time())
    addrs = list(net.hosts())
    for i in range(1, hosts + 1):
        hname = f"lab-h{i}"
        lab.hosts.append(LabHost(
            name=hname, index=i, address=str(addrs[HOST_OFFSET + i - 1]),
            netns=f"kf-{name}-h{i}", veth=f"kf{name}h{i}", state=str(LAB_ROOT / name / hname),
        ))
    return lab


# -- bring up ------------------------------------------------------------------

def _ensure_bridge(lab: Lab) -> None:
    prefix = ipaddress.ip_network(lab.subnet).prefixlen
    if _run(["ip", "link", "show", lab.bridge], check=False).returncode != 0:
        _run(["ip", "link", "add", lab.bridge, "type", "bridge"])
    _run(["ip", "addr", "replace", f"{lab.gateway}/{prefix}", "dev", lab.bridge])
    _run(["ip", "link", "set", lab.bridge, "up"])


def _ensure_keys(lab: Lab) -> None:
    lab.ssh_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(lab.ssh_dir, 0o700)
    if not lab.key_file.exists():
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"kvmfleet-lab-{lab.name}", "-f", str(lab.key_file)])
    pub = Path(f"{lab.key_file}.pub").read_text()
    (lab.ssh_dir / "authorized_keys").write_text(pub)
    os.chmod(lab.ssh_dir / "authorized_keys", 0o600)


def _prepare_state(lab: Lab, host: LabHost) -> None:
    sd = host.state_dir
    sd.mkdir(parents=True, exist_ok=True)
    if not (sd / "etc-libvirt").exists():
        shutil.copytree("/etc/libvirt", sd / "etc-libvirt", symlinks=True)
    if not (sd / "lib-libvirt").exists():
        shutil.copytree("/var/lib/libvirt", sd / "lib-libvirt", symlinks=True)
    for sub in ("log-libvirt/qemu", "run-libvirt", "etc-ssh", "root-ssh"):
        (sd / sub).mkdir(parents=True, exist_ok=True)
    # The lab's QEMU guests run under TCG and share this machine's cgroup tree with the other lab
    # hosts' guests; keep libvirt out of cgroups so same-named guests on two lab hosts can't collide.
    qemu_conf = sd / "etc-libvirt" / "qemu.conf"
    text = qemu_conf.read_text()
    marker = "# kvmfleet lab settings"
    if marker not in text:
        text += f"\n{marker}\ncgroup_controllers = [ ]\nvnc_listen = \"127.0.0.1\"\n"
        qemu_conf.write_text(text)
    # SSH host keys of this lab host, generated once.
    key = sd / "etc-ssh" / "ssh_host_ed25519_key"
    if not key.exists():
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{host.name}.{lab.name}", "-f", str(key)])
    (sd / "etc-ssh" / "sshd_config").write_text("\n".join([
        f"ListenAddress {host.address}",
        "Port 22",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        f"PidFile {sd}/sshd.pid",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        f"AuthorizedKeysFile {lab.ssh_dir}/authorized_keys",
        "MaxStartups 100:30:200",
        "MaxSessions 100",
        "UseDNS no",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ]))
    # ssh client config for host-to-host connections (live migration over qemu+ssh).
    (sd / "etc-ssh" / "ssh_config").write_text("\n".join([
        "Host *",
        f"    IdentityFile {lab.key_file}",
        f"    UserKnownHostsFile {lab.known_hosts}",
        "    StrictHostKeyChecking yes",
        "    BatchMode yes",
        "",
    ]))
    (sd / "hostname").write_text(f"{host.name}\n")


def _write_hosts_files(lab: Lab) -> None:
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{h.address} {h.name}" for h in lab.hosts]
    (lab.root / "hosts").write_text("\n".join(lines) + "\n")
    known = []
    for h in lab.hosts:
        pub = (h.state_dir / "etc-ssh" / "ssh_host_ed25519_key.pub").read_text().split()
        known.append(f"{h.name},{h.address} {pub[0]} {pub[1]}")
    lab.known_hosts.write_text("\n".join(known) + "\n")


def _ensure_netns(lab: Lab, host: LabHost) -> None:
    prefix = ipaddress.ip_network(lab.subnet).prefixlen
    if _netns_inode(host.netns) is None:
        _run(["ip", "netns", "add", host.netns])
    if _run(["ip", "link", "show", host.veth], check=False).returncode != 0:
        _run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    _run(["ip", "link", "set", host.veth, "master", lab.bridge])
    _run(["ip", "link", "set", host.veth, "up"])
    ns = ["ip", "netns", "exec", host.netns]
    _run(ns + ["ip", "link", "set", "lo", "up"])
    _run(ns + ["ip", "addr", "replace", f"{host.address}/{prefix}", "dev", "eth0"])
    _run(ns + ["ip", "link", "set", "eth0", "up"])


def _mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh)


def _ensure_ns_dir(lab: Lab) -> None:
    # Namespace files must sit on a private mount, as /run/netns does.
    lab.ns_dir.mkdir(parents=True, exist_ok=True)
    if not _mounted(lab.ns_dir):
        _run(["mount", "--bind", str(lab.ns_dir), str(lab.ns_dir)])
    _run(["mount", "--make-private", str(lab.ns_dir)])


def _ensure_mount_ns(lab: Lab, host: LabHost) -> None:
    mnt, uts = lab.mnt_file(host), lab.uts_file(host)
    if _mounted(mnt) and _mounted(uts):
        return
    for f in (mnt, uts):
        if _mounted(f):
            _run(["umount", str(f)])
        f.touch()
    sd = host.state_dir
    script = [
        "set -e",
        f"hostname {host.name}",
        "mount --make-rprivate /",
        # sysfs of this host's network namespace (what `ip netns exec` does).
        f"nsenter --net=/run/netns/{host.netns} -- mount -t sysfs -o nosuid,nodev,noexec {host.netns} /sys",
    ]
    for target, sub in PRIVATE_DIRS.items():
        script += [f"mkdir -p {target}", f"mount --bind {sd / sub} {target}"]
    script += [
        f"mount --bind {lab.root / 'hosts'} /etc/hosts",
        f"mount --bind {sd / 'hostname'} /etc/hostname",
        f"mkdir -p /root/.ssh && mount --bind {sd / 'root-ssh'} /root/.ssh",
    ]
    _run(["unshare", f"--mount={mnt}", f"--uts={uts}", "--propagation", "private", "sh", "-c", "\n".join(script)])
    # Host-to-host ssh for root inside the lab host (migration): lab key, lab known_hosts.
    rs = sd / "root-ssh"
    shutil.copy(lab.key_file, rs / "id_ed25519")
    shutil.copy(f"{lab.key_file}.pub", rs / "id_ed25519.pub")
    shutil.copy(lab.known_hosts, rs / "known_hosts")
    shutil.copy(lab.ssh_dir / "authorized_keys", rs / "authorized_keys")
    os.chmod(rs, 0o700)
    for f in rs.iterdir():
        os.chmod(f, 0o600)


def _daemon_alive(host: LabHost, pidfile: Path) -> bool:
    pid = _read_pid(pidfile)
    return pid is not None and _pid_in_netns(pid, _netns_inode(host.netns))


def _start_daemons(lab: Lab, host: LabHost) -> None:
    sd = host.state_dir
    Path("/run/sshd").mkdir(exist_ok=True)
    if not _daemon_alive(host, sd / "virtlogd.pid"):
        _run(_in_host(lab, host, ["/usr/sbin/virtlogd", "--daemon", "--pid-file", str(sd / "virtlogd.pid")]))
    if not _daemon_alive(host, sd / "libvirtd.pid"):
        _run(_in_host(lab, host, ["/usr/sbin/libvirtd", "--daemon", "--pid-file", str(sd / "libvirtd.pid")]))
    if not _daemon_alive(host, sd / "sshd.pid"):
        _run(_in_host(lab, host, ["/usr/sbin/sshd", "-f", "/etc/ssh/sshd_config"]))


def _wait_libvirt(lab: Lab, host: LabHost, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = _run(_in_host(lab, host, ["virsh", "-c", "qemu:///system", "version"]), check=False, timeout=timeout)
        if proc.returncode == 0:
            return
        last = proc.stderr.strip()
        time.sleep(0.5)
    raise LabError(f"{host.name}: libvirtd did not answer within {timeout:.0f}s: {last}")


def ssh_base(lab: Lab) -> list[str]:
    return [
        "ssh", "-i", str(lab.key_file), "-o", f"UserKnownHostsFile={lab.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        "-o", "ControlMaster=no",
    ]


def _wait_ssh(lab: Lab, host: LabHost, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        proc = _run(ssh_base(lab) + [f"root@{host.address}", "hostname"], check=False, timeout=15)
        if proc.returncode == 0 and proc.stdout.strip() == host.name:
            return
        last = (proc.stderr or proc.stdout).strip()
        time.sleep(0.3)
    raise LabError(f"{host.name}: sshd at {host.address} did not answer within {timeout:.0f}s: {last}")


def write_inventory(lab: Lab, extra_path: Path | None = None) -> Path:
    hosts = {h.name: {"ansible_host": h.address, "kvmfleet_lab_netns": h.netns} for h in lab.hosts}
    inv = {
        "all": {
            "children": {
                "kvm_hosts": {
                    "hosts": hosts,
                    "vars": {
                        "ansible_user": "root",
                        "ansible_ssh_private_key_file": str(lab.key_file),
                        "ansible_ssh_common_args": (
                            f"-o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes"
                        ),
                        "ansible_python_interpreter": "/usr/bin/python3",
                        "kvmfleet_virt_type": "qemu",
                        "kvmfleet_lab": True,
                        "kvmfleet_lab_name": lab.name,
                        "kvm_host_manage_services": False,
                        "kvm_host_install_packages": False,
                    },
                }
            }
        }
    }
    text = f"# Written by `kvmfleet lab up --name {lab.name}`; rewritten on every up.\n" + yaml.safe_dump(inv, sort_keys=False)
    lab.inventory.write_text(text)
    if extra_path is not None:
        extra_path.parent.mkdir(parents=True, exist_ok=True)
        extra_path.write_text(text)
    return lab.inventory


def _ansible_playbook() -> str:
    # The venv's ansible-playbook even when the venv is not on PATH.
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if not found:
        raise LabError("ansible-playbook not found: run `make venv`")
    return found


def _prepare_hosts(lab: Lab, repo_root: Path, log) -> None:
    playbook = repo_root / "playbooks" / "host_prepare.yml"
    if not playbook.exists():
        raise LabError(f"{playbook} is missing: lab hosts are prepared by the kvm_host role")
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(repo_root / "ansible.cfg"))
    env["ANSIBLE_COLLECTIONS_PATH"] = str(repo_root / "build" / "collections")
    proc = subprocess.run(
        [_ansible_playbook(), "-i", str(lab.inventory), str(playbook)],
        capture_output=True, text=True, env=env, cwd=str(repo_root), timeout=900, check=False,
    )
    (lab.root / "host_prepare.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise LabError(f"preparing lab hosts with the kvm_host role failed (log: {lab.root / 'host_prepare.log'}):\n{tail}")
    log(f"lab {lab.name}: hosts prepared by the kvm_host role")


def is_healthy(lab: Lab) -> bool:
    if _netns_inode(lab.hosts[0].netns) is None:
        return False
    for h in lab.hosts:
        if not (_mounted(lab.mnt_file(h)) and _mounted(lab.uts_file(h))):
            return False
        for pidfile in ("virtlogd.pid", "libvirtd.pid", "sshd.pid"):
            if not _daemon_alive(h, h.state_dir / pidfile):
                return False
    return True


def up(name: str, hosts: int, subnet: str | None = None, pool: str = DEFAULT_POOL,
       repo_root: Path | None = None, prepare: bool = True, inventory_copy: Path | None = None,
       log=print) -> Lab:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, bridges, daemons)")
    for tool in ("ip", "nsenter", "unshare", "/usr/sbin/sshd", "/usr/sbin/libvirtd", "/usr/sbin/virtlogd", "virsh"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found: run `make deps` (installs the lab's Debian packages)")
    existing = load(name)
    lab = plan(name, hosts, subnet=subnet, pool=pool)
    if existing is not None:
        same = (len(existing.hosts) == hosts and existing.subnet == lab.subnet)
        if same and is_healthy(existing):
            log(f"lab {name}: already up ({hosts} hosts on {existing.subnet})")
            write_inventory(existing, inventory_copy)
            if prepare and repo_root is not None:
                _prepare_hosts(existing, repo_root, log)
            return existing
        log(f"lab {name}: found a stale or different lab of this name; removing it first")
        down(name, log=log)
    else:
        # Leftovers with no lab.json (a run killed before it wrote one).
        _cleanup_orphans(lab, log)
    lab.root.mkdir(parents=True, exist_ok=True)
    _save(lab)
    try:
        _ensure_bridge(lab)
        _ensure_keys(lab)
        _ensure_ns_dir(lab)
        for h in lab.hosts:
            _prepare_state(lab, h)
        _write_hosts_files(lab)
        for h in lab.hosts:
            _ensure_netns(lab, h)
            _ensure_mount_ns(lab, h)
        # /dev/kvm is root-only until its group is kvm (libvirt-qemu is in kvm).
        if os.path.exists("/dev/kvm"):
            _run(["chgrp", "kvm", "/dev/kvm"], check=False)
            _run(["chmod", "0660", "/dev/kvm"], check=False)
        # First libvirtd probes QEMU capabilities into the shared /var/cache/libvirt; the rest reuse it.
        t0 = time.monotonic()
        _start_daemons(lab, lab.hosts[0])
        _wait_libvirt(lab, lab.hosts[0])
        for h in lab.hosts[1:]:
            _start_daemons(lab, h)
        for h in lab.hosts:
            _wait_libvirt(lab, h)
            _wait_ssh(lab, h)
        log(f"lab {name}: {hosts} hosts answering ssh and libvirt after {time.monotonic() - t0:.1f}s")
        write_inventory(lab, inventory_copy)
        if prepare and repo_root is not None:
            _prepare_hosts(lab, repo_root, log)
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        raise LabError(f"lab {name}: up failed: {exc}\n(run `kvmfleet lab down --name {name}` to clean up)") from exc
    return lab


# -- tear down -----------------------------------------------------------------

def _kill_pids(pids: list[int], ns_inode: int | None, timeout: float = 10) -> None:
    pids = [p for p in pids if _pid_in_netns(p, ns_inode)]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_pid_in_netns(p, ns_inode) for p in pids):
        time.sleep(0.1)
    for p in pids:
        if _pid_in_netns(p, ns_inode):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _child_pidfiles(host: LabHost) -> list[Path]:
    run = host.state_dir / "run-libvirt"
    if not run.exists():
        return []
    return [p for p in run.rglob("*.pid") if p.is_file()]


def _stop_host(lab: Lab, host: LabHost) -> None:
    ns_inode = _netns_inode(host.netns)
    sd = host.state_dir
    if ns_inode is not None and _mounted(lab.mnt_file(host)) and _daemon_alive(host, sd / "libvirtd.pid"):
        # Let libvirt stop its guests first so their state is released cleanly.
        virsh = _in_host(lab, host, ["virsh", "-c", "qemu:///system"])
        names = _run(virsh + ["list", "--name"], check=False, timeout=30).stdout.split()
        for dom in names:
            _run(virsh + ["destroy", dom], check=False, timeout=30)
    # Daemons we started, then what libvirtd started (QEMU, dnsmasq), all by pid file.
    daemon_pids = [p for p in (_read_pid(sd / f) for f in ("sshd.pid", "libvirtd.pid", "virtlogd.pid")) if p]
    _kill_pids(daemon_pids, ns_inode)
    child_pids = [p for p in (_read_pid(f) for f in _child_pidfiles(host)) if p]
    _kill_pids(child_pids, ns_inode)


def down(name: str, log=print) -> bool:
    """Stop and remove lab `name`. Returns False when there was nothing to remove."""
    validate_lab_name(name)
    lab = load(name)
    if lab is None:
        lab = plan_stub(name)
        found = _cleanup_orphans(lab, log)
        if not found:
            log(f"lab {name}: nothing to remove")
        return found
    for h in lab.hosts:
        _stop_host(lab, h)
    _cleanup_orphans(lab, log)
    log(f"lab {name}: removed")
    return True


def plan_stub(name: str) -> Lab:
    """A Lab describing the resources a lab of this name could have left, for orphan cleanup."""
    lab = Lab(name=name, subnet="0.0.0.0/32", bridge=f"kfbr-{name}")
    return lab


def _cleanup_orphans(lab: Lab, log) -> bool:
    """Remove namespaces, mounts, links and state of lab.name whatever state they are in."""
    found = False
    netns_list = _run(["ip", "netns", "list"], check=False).stdout
    prefix = f"kf-{lab.name}-h"
    for line in netns_list.splitlines():
        ns = line.split()[0] if line.split() else ""
        if ns.startswith(prefix):
            found = True
            host = next((h for h in lab.hosts if h.netns == ns), None)
            if host is None:
                idx = ns[len(prefix):]
                host = LabHost(name=f"lab-h{idx}", index=int(idx) if idx.isdigit() else 0, address="",
                               netns=ns, veth=f"kf{lab.name}h{idx}", state=str(LAB_ROOT / lab.name / f"lab-h{idx}"))
                _stop_host(lab, host)
            _run(["ip", "netns", "del", ns], check=False)
    if lab.ns_dir.exists():
        for f in sorted(lab.ns_dir.iterdir()):
            if _mounted(f):
                found = True
                _run(["umount", str(f)], check=False)
        if _mounted(lab.ns_dir):
            _run(["umount", str(lab.ns_dir)], check=False)
        shutil.rmtree(lab.ns_dir, ignore_errors=True)
    out = _run(["ip", "-o", "link", "show"], check=False).stdout
    for match in re.finditer(r"^\d+: ([^:@\s]+)", out, re.MULTILINE):
        link = match.group(1)
        if link == lab.bridge or re.fullmatch(rf"kf{lab.name}h\d+", link):
            found = True
            _run(["ip", "link", "del", link], check=False)
    if lab.root.exists():
        found = True
        shutil.rmtree(lab.root, ignore_errors=True)
    return found


# -- status --------------------------------------------------------------------

def status(name: str) -> list[dict]:
    lab = load(name)
    if lab is None:
        raise LabError(f"lab {name} does not exist (run `kvmfleet lab up --name {name}`)")
    rows = []
    for h in lab.hosts:
        row = {"host": h.name, "address": h.address, "netns": h.netns, "ssh": False, "libvirt": False,
               "domains": None, "running": None, "error": ""}
        proc = _run(ssh_base(lab) + [f"root@{h.address}", "hostname"], check=False, timeout=15)
        row["ssh"] = proc.returncode == 0 and proc.stdout.strip() == h.name
        if not row["ssh"]:
            row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ""
            row["error"] = row["error"][0] if row["error"] else f"ssh exit {proc.returncode}"
        else:
            proc = _run(ssh_base(lab) + [f"root@{h.address}",
                                         ("virsh -c qemu:///system list --all --name && echo --- && "
                                          "virsh -c qemu:///system list --name")], check=False, timeout=30)
            if proc.returncode == 0:
                all_part, _, run_part = proc.stdout.partition("---")
                row["libvirt"] = True
                row["domains"] = len(all_part.split())
                row["running"] = len(run_part.split())
            else:
                row["error"] = proc.stderr.strip()
        rows.append(row)
    return rows


def list_labs() -> list[str]:
    if not LAB_ROOT.exists():
        return []
    return sorted(p.name for p in LAB_ROOT.iterdir() if (p / "lab.json").exists())
