"""Compute API: instance_actions (not served yet)."""

from __future__ import annotations

from fastapi import APIRouter

from kvmfleet.api.compute import PREFIX

router = APIRouter(prefix=PREFIX)
