"""openstacksdk (unmodified, from PyPI) as a tenant's script would use it: connect through clouds.yaml,
look up flavor/image/network, create a server, list it, act on it, delete it — against a real
`kvmfleet serve` whose servers run on the lab's hosts, checked against what the host runs."""

from __future__ import annotations

import secrets
from pathlib import Path

import openstack
import pytest
from conftest import ADMIN_CLOUD, Service
from conftest_lab import lab_hosts
from openstack import exceptions as sdk_exceptions
from openstack.config import loader

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
TENANT = f"sdk-{SUFFIX}"
NAME = f"sdk-vm-{SUFFIX}"


def connect(svc: Service, cloud: str) -> openstack.connection.Connection:
    """What `openstack.connect(cloud=...)` does, with the service's clouds.yaml named explicitly."""
    config = loader.OpenStackConfig(config_files=[str(svc.clouds_file)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


@pytest.fixture(scope="module")
def conns(compute_service: Service) -> tuple[openstack.connection.Connection, openstack.connection.Connection]:
    compute_service.user(TENANT, project=TENANT, role="member")
    tenant, admin = connect(compute_service, TENANT), connect(compute_service, ADMIN_CLOUD)
    yield tenant, admin
    leftover = tenant.compute.find_server(NAME)
    if leftover is not None:
        tenant.compute.delete_server(leftover)
        tenant.compute.wait_for_delete(leftover, wait=600)
    tenant.close()
    admin.close()


def test_sdk_create_list_action_delete(conns: tuple, lab_inventory: Path) -> None:
    tenant, admin = conns
    hosts = {h.name: h for h in lab_hosts(lab_inventory)}

    flavor = tenant.compute.find_flavor("api.nano", ignore_missing=False)
    image = tenant.image.find_image("tiny", ignore_missing=False)
    network = tenant.network.find_network("default", ignore_missing=False)
    assert (flavor.ram, flavor.vcpus, flavor.disk) == (128, 1, 1)
    assert image.disk_format == "qcow2" and image.status == "active"

    server = tenant.compute.create_server(name=NAME, flavor_id=flavor.id, image_id=image.id,
                                          networks=[{"uuid": network.id}], metadata={"made-by": "openstacksdk"})
    assert server.id
    server = tenant.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=3, wait=900)
    assert server.name == NAME and server.flavor.original_name == "api.nano"
    assert server.metadata == {"made-by": "openstacksdk"}
    assert server.compute_host is None  # host attributes are for admins

    placed = admin.compute.get_server(server.id)
    host, domain = hosts[placed.compute_host], placed.instance_name
    assert host.run(f"virsh domstate {domain}").strip() == "running"

    listed = {s.id: s for s in tenant.compute.servers(details=True)}
    assert listed[server.id].status == "ACTIVE"
    assert [s.id for s in tenant.compute.servers(name=f"^{NAME}$")] == [server.id]
    assert server.id not in {s.id for s in admin.compute.servers()}  # the admin's own project only...
    assert server.id in {s.id for s in admin.compute.servers(all_projects=True)}  # ...unless all_projects

    tenant.compute.stop_server(server)
    server = tenant.compute.wait_for_server(server, status="SHUTOFF", failures=["ERROR"], interval=3, wait=600)
    assert server.power_state == 4
    assert host.run(f"virsh domstate {domain}").strip() == "shut off"
    tenant.compute.start_server(server)
    server = tenant.compute.wait_for_server(server, status="ACTIVE", failures=["ERROR"], interval=3, wait=600)
    assert host.run(f"virsh domstate {domain}").strip() == "running"

    actions = [a.action for a in tenant.compute.server_actions(server)]
    assert {"create", "stop", "start"} <= set(actions), actions

    tenant.compute.delete_server(server)
    tenant.compute.wait_for_delete(server, interval=3, wait=600)
    assert tenant.compute.find_server(NAME) is None
    with pytest.raises(sdk_exceptions.NotFoundException):
        tenant.compute.get_server(server.id)
    assert domain not in host.domains()


def test_sdk_maps_faults_to_exceptions(conns: tuple) -> None:
    tenant, _ = conns
    with pytest.raises(sdk_exceptions.NotFoundException):
        tenant.compute.get_server("00000000-0000-4000-8000-000000000000")
    with pytest.raises(sdk_exceptions.ForbiddenException):
        list(tenant.compute.hypervisors())  # admin only
    with pytest.raises(sdk_exceptions.BadRequestException):
        tenant.compute.create_server(name=NAME, flavor_id="no-such-flavor", image_id="no-such-image",
                                     networks="none")
    assert tenant.compute.find_server(NAME) is None  # nothing stored
