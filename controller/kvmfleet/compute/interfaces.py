"""Interface attach and detach on a server (Nova's os-interface; `openstack server add/remove port|network`).

attach(store, key, project, network_id=..., port_id=..., fixed_ip=...): the port is made (or bound) and the
NIC recorded in the instance's config in one transaction; then the host gets the network and the port's
filter (kvmfleet.network.reconcile) and the NIC is hot-plugged (kvmfleet.compute.interface_attachment:
live into a running guest and into its definition, or into the definition of a stopped one). If the host
step fails, the record is undone (the port made for it deleted, a given port unbound) and the error names
the host and what failed: nothing half-made.

detach(store, key, project, port_id): unplugged first (waiting for the guest to let go), then the NIC leaves
the config and its port is released (deleted if it was made for the server).
"""

from __future__ import annotations

from typing import Any

from kvmfleet.compute import actions, nics
from kvmfleet.compute.common import find_instance, hosts_inventory, new_job, project_for, run_job
from kvmfleet.compute.errors import OperationFailed
from kvmfleet.network import reconcile
from kvmfleet.network.model import DEFAULT_NETWORK
from kvmfleet.network.model import network_id as provider_network_id
from kvmfleet.network.model import port_id as provider_port_id
from kvmfleet.store.errors import Conflict, NotFound
from kvmfleet.store.models import Instance
from kvmfleet.store.network_models import Port
from kvmfleet.store.states import VmState

PLAYBOOK = "network.yml"
ATTACHABLE = (VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED)


def _check(inst: Instance, what: str) -> None:
    if inst.vm_state not in ATTACHABLE or inst.task_state is not None or not inst.host:
        state = inst.vm_state.value if hasattr(inst.vm_state, "value") else inst.vm_state
        raise Conflict(f"Cannot '{what}' instance {inst.uuid} while it is in vm_state {state}"
                       + (f", task_state {inst.task_state}" if inst.task_state else ""), server=inst.uuid)


def _nic_spec(session: Any, inst: Instance, index: int, state: str) -> dict[str, Any]:
    config = inst.config or {}
    spec = nics.nic_specs(session, inst, [config["networks"][index]], [config["macs"][index]])[0]
    out = {"domain": inst.domain_name, "network": spec["network"], "mac": spec["mac"], "state": state}
    for key in ("target", "mtu", "filter"):
        if key in spec:
            out[key] = spec[key]
    return out


def _plug(store: Any, host: str, spec: dict[str, Any]) -> None:
    inv = store.run_in_transaction(lambda session: hosts_inventory(session, [host]))
    result = run_job(new_job(PLAYBOOK, inv, {"kvmfleet_network_hosts": [host], "kvmfleet_networks": {},
                                             "kvmfleet_firewalls": {}, "kvmfleet_interfaces": {host: [spec]}},
                             limit=host))
    if not result.ok:
        verb = "attach" if spec["state"] == "present" else "detach"
        raise OperationFailed(f"{verb} interface {spec['mac']} on host {host} failed: {result.error_for(host)}")


def project_id_of(session: Any, project: str | None) -> str | None:
    """A project name or id (the CLI's --project) as the id find_instance filters by."""
    return project_for(session, project).id if project else None


def describe(session: Any, inst: Instance) -> list[dict[str, Any]]:
    """Nova's interfaceAttachments of the server: tenant ports and provider NICs, in NIC order."""
    config = inst.config or {}
    ports = {p.mac_address.lower(): p for p in nics.tenant_ports(session, inst.uuid)}
    out = []
    for network, mac, _port_id in zip(config.get("networks") or [], config.get("macs") or [],
                                      config.get("ports") or [None] * len(config.get("macs") or []), strict=False):
        port = ports.get(str(mac).lower())
        if port is not None:
            out.append({"port_id": port.id, "net_id": port.network_id, "mac_addr": port.mac_address,
                        "port_state": port.status,
                        "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address} for a in port.fixed_ips]})
        elif network == DEFAULT_NETWORK:
            out.append({"port_id": provider_port_id(inst.uuid, str(mac).lower()),
                        "net_id": provider_network_id(DEFAULT_NETWORK), "mac_addr": str(mac).lower(),
                        "port_state": "ACTIVE" if inst.vm_state is VmState.ACTIVE else "DOWN", "fixed_ips": []})
    return out


def attach(store: Any, key: str, project: str | None = None, *, network_id: str | None = None,
           port_id: str | None = None, fixed_ip: str | None = None, admin: bool = False,
           user_id: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    """Hot-plug a NIC (a new port on `network_id`, or the existing `port_id`); its interfaceAttachment."""

    def record(session: Any) -> tuple[str, str, dict[str, Any], int]:
        inst = find_instance(session, key, project_id_of(session, project))
        _check(inst, "attach_interface")
        if network_id is not None and network_id in (DEFAULT_NETWORK, provider_network_id(DEFAULT_NETWORK)):
            item: Any = DEFAULT_NETWORK
        elif port_id is not None:
            item = {"port_id": port_id}
        else:
            net = nics.lookup_network(session, str(network_id), inst.project_id)
            item = {"network_id": net.id, **({"fixed_ip": fixed_ip} if fixed_ip else {})}
        before = dict(inst.config or {})
        old = (list(before.get("networks") or []), list(before.get("macs") or []),
               list(before.get("ports") or [None] * len(before.get("macs") or [])))
        nics.allocate(session, inst, [item], admin=admin)
        config = dict(inst.config)
        config["networks"], config["macs"], config["ports"] = (old[0] + config["networks"], old[1] + config["macs"],
                                                               old[2] + config["ports"])
        inst.config = config
        session.flush()
        index = len(config["networks"]) - 1
        action = actions.start_action(session, inst.uuid, "attach_interface", request_id or actions.new_request_id(),
                                      inst.project_id, user_id)
        return inst.uuid, inst.host, _nic_spec(session, inst, index, "present"), action.id

    uuid, host, spec, action_id = store.run_in_transaction(record)
    try:
        if spec.get("filter"):
            reconcile.converge(store, [host])
        _plug(store, host, spec)
    except (OperationFailed, reconcile.ConvergeFailed) as exc:
        _forget(store, uuid, spec["mac"], action_id, str(exc))
        if spec.get("filter"):
            reconcile.converge(store, [host], raise_on_error=False)
        raise OperationFailed(f"attach interface to server {uuid} failed: {exc}") from None

    def done(session: Any) -> dict[str, Any]:
        inst = session.get(Instance, uuid)
        nics.mark_bound(session, uuid, host, active=inst.vm_state is VmState.ACTIVE)
        actions.finish_action(session, action_id)
        return next(a for a in describe(session, inst) if a["mac_addr"] == spec["mac"])

    return store.run_in_transaction(done)


def _forget(store: Any, uuid: str, mac: str, action_id: int | None, error: str | None) -> None:
    """The NIC with this MAC leaves the instance's config; its port is released."""

    def forget(session: Any) -> None:
        inst = session.get(Instance, uuid)
        config = dict(inst.config or {})
        macs = [str(m).lower() for m in config.get("macs") or []]
        if mac in macs:
            i = macs.index(mac)
            ports = list(config.get("ports") or [None] * len(macs))
            for name in ("networks", "macs"):
                config[name] = [v for j, v in enumerate(config.get(name) or []) if j != i]
            config["ports"] = [v for j, v in enumerate(ports) if j != i]
            inst.config = config
        for port in nics.tenant_ports(session, uuid):
            if port.mac_address.lower() == mac:
                nics.release_port(session, port)
        if action_id is not None:
            actions.finish_action(session, action_id, error)

    store.run_in_transaction(forget)


def detach(store: Any, key: str, port_id: str, project: str | None = None, *, user_id: str | None = None,
           request_id: str | None = None) -> None:
    """Unplug the NIC of `port_id` (a tenant port, or a provider NIC's derived id) and release its port."""

    def find(session: Any) -> tuple[str, str, dict[str, Any], int]:
        inst = find_instance(session, key, project_id_of(session, project))
        _check(inst, "detach_interface")
        macs = [str(m).lower() for m in (inst.config or {}).get("macs") or []]
        port = session.get(Port, port_id)
        mac = port.mac_address.lower() if port is not None and port.device_id == inst.uuid else None
        if mac is None:
            mac = next((m for m in macs if provider_port_id(inst.uuid, m) == port_id), None)
        if mac is None or mac not in macs:
            raise NotFound(f"Port {port_id} is not attached", port=port_id)
        action = actions.start_action(session, inst.uuid, "detach_interface", request_id or actions.new_request_id(),
                                      inst.project_id, user_id)
        return inst.uuid, inst.host, _nic_spec(session, inst, macs.index(mac), "absent"), action.id

    uuid, host, spec, action_id = store.run_in_transaction(find)
    try:
        _plug(store, host, spec)
    except OperationFailed as exc:
        error = exc.msg
        store.run_in_transaction(lambda session: actions.finish_action(session, action_id, error))
        raise
    _forget(store, uuid, spec["mac"], action_id, None)
    if spec.get("filter"):
        reconcile.converge(store, [host], raise_on_error=False)

