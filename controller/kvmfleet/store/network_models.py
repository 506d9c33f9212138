"""Tenant networks (revision 0007): Neutron's networks, subnets, ports, IP allocations, security groups
and their rules, in Neutron's terms.

The provider network ``default`` (each host's libvirt NAT network) is not a row: kvmfleet.network.model
derives it and its ports from the instances, as before. Every other network is a row here, realised on a
host as a Linux bridge, a VXLAN (or VLAN / flat) device and a libvirt network by kvmfleet.compute.network,
on the hosts that have ports of it (kvmfleet.network.reconcile).

Uniqueness the store enforces: one segment per (network_type, physical_network, segmentation_id); one MAC
per network; one port per (subnet, IP address) — the primary key of ip_allocations, so two concurrent creates
can never hand out the same address.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kvmfleet.store.models import Base, new_uuid, utcnow


class Network(Base):
    """A network (Neutron's network with the provider extension)."""

    __tablename__ = "networks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)  # router:external
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    network_type: Mapped[str] = mapped_column(String(16), default="vxlan")  # vxlan, vlan, flat
    physical_network: Mapped[str | None] = mapped_column(String(64), default=None)  # vlan/flat: a host interface
    segmentation_id: Mapped[int | None] = mapped_column(Integer, default=None)  # VNI or VLAN id
    mtu: Mapped[int] = mapped_column(Integer, default=1450)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)

    subnets: Mapped[list[Subnet]] = relationship(back_populates="network", viewonly=True, order_by="Subnet.created_at")

    __table_args__ = (UniqueConstraint("network_type", "physical_network", "segmentation_id"),
                      Index("ix_networks_project", "project_id"))

    @property
    def libvirt_name(self) -> str:
        """The libvirt network on a host (tenant names never reach a host)."""
        return f"kf-{self.id}"

    @property
    def bridge(self) -> str:
        """The Linux bridge on a host (at most 15 characters)."""
        return f"kfbr{self.id.replace('-', '')[:11]}"

    @property
    def vxlan_device(self) -> str:
        return f"kfvx{self.id.replace('-', '')[:11]}"


class Subnet(Base):
    """An IPv4 subnet of a network with its allocation pools (Neutron's subnet)."""

    __tablename__ = "subnets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    ip_version: Mapped[int] = mapped_column(Integer, default=4)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    dns_nameservers: Mapped[list[Any]] = mapped_column(default=list)  # [address]
    allocation_pools: Mapped[list[Any]] = mapped_column(default=list)  # [{start, end}]
    host_routes: Mapped[list[Any]] = mapped_column(default=list)  # [{destination, nexthop}]
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)

    network: Mapped[Network] = relationship(back_populates="subnets")

    __table_args__ = (Index("ix_subnets_network", "network_id"), Index("ix_subnets_project", "project_id"))


class Port(Base):
    """A port: one NIC's MAC and fixed IPs on a network (Neutron's port with port security and binding)."""

    __tablename__ = "ports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    mac_address: Mapped[str] = mapped_column(String(17))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")  # DOWN, BUILD, ACTIVE
    device_id: Mapped[str] = mapped_column(String(255), default="")  # the instance uuid when bound
    device_owner: Mapped[str] = mapped_column(String(255), default="")  # compute:<az> when bound
    binding_host: Mapped[str | None] = mapped_column(String(255), default=None)  # binding:host_id
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    auto_delete: Mapped[bool] = mapped_column(Boolean, default=False)  # made by a server create: goes with it
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)

    network: Mapped[Network] = relationship()
    fixed_ips: Mapped[list[IPAllocation]] = relationship(back_populates="port", viewonly=True,
                                                         order_by="IPAllocation.ip_address")
    security_groups: Mapped[list[SecurityGroup]] = relationship(secondary="port_security_groups", viewonly=True,
                                                                order_by="SecurityGroup.created_at")

    __table_args__ = (UniqueConstraint("network_id", "mac_address"), Index("ix_ports_device", "device_id"),
                      Index("ix_ports_project", "project_id"), Index("ix_ports_host", "binding_host"))

    @property
    def tap(self) -> str:
        """The guest's tap device on its host (at most 15 characters; libvirt reserves vnet*)."""
        return f"kft{self.id.replace('-', '')[:11]}"

    @property
    def filter_name(self) -> str:
        """The host's nwfilter of this port."""
        return f"kf-port-{self.id}"


class IPAllocation(Base):
    """One fixed IP of a port. The primary key is (subnet, address): the store refuses a second holder."""

    __tablename__ = "ip_allocations"

    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id", ondelete="CASCADE"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"))
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))

    port: Mapped[Port] = relationship(back_populates="fixed_ips")

    __table_args__ = (Index("ix_ip_allocations_port", "port_id"),)


class SecurityGroup(Base):
    """A security group (Neutron's, stateful)."""

    __tablename__ = "security_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)  # the project's "default" group
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)

    rules: Mapped[list[SecurityGroupRule]] = relationship(
        back_populates="security_group", viewonly=True, order_by="SecurityGroupRule.created_at",
        foreign_keys="SecurityGroupRule.security_group_id")

    __table_args__ = (Index("ix_security_groups_project", "project_id"),)


class SecurityGroupRule(Base):
    """A rule of a security group (Neutron's security group rule)."""

    __tablename__ = "security_group_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    direction: Mapped[str] = mapped_column(String(8))  # ingress, egress
    ethertype: Mapped[str] = mapped_column(String(8), default="IPv4")  # IPv4, IPv6
    protocol: Mapped[str | None] = mapped_column(String(16), default=None)  # tcp, udp, icmp, a number, None=any
    port_range_min: Mapped[int | None] = mapped_column(Integer, default=None)
    port_range_max: Mapped[int | None] = mapped_column(Integer, default=None)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), default=None)
    remote_group_id: Mapped[str | None] = mapped_column(ForeignKey("security_groups.id", ondelete="CASCADE"),
                                                        default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)

    security_group: Mapped[SecurityGroup] = relationship(back_populates="rules", foreign_keys=[security_group_id])

    __table_args__ = (Index("ix_security_group_rules_group", "security_group_id"),)


class PortSecurityGroup(Base):
    """A port's membership of a security group."""

    __tablename__ = "port_security_groups"

    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id", ondelete="CASCADE"),
                                                   primary_key=True)



class HostNetworkState(Base):
    """What kvmfleet.network.reconcile last applied on a host: the hash of the host's desired networks and
    port filters, and the tenant networks it made there (so one no longer needed is removed)."""

    __tablename__ = "host_network_states"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    applied_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    networks: Mapped[list[Any]] = mapped_column(default=list)  # libvirt names of the tenant networks made there
    error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
