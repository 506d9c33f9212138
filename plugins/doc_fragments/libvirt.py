# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  uri:
    description:
      - The libvirt connection URI on the managed host.
    type: str
    default: qemu:///system
requirements:
  - python3 libvirt bindings (libvirt-python; Debian package C(python3-libvirt)) on the managed host
"""

    # Where kvmfleet keeps base images and instance directories on a host.
    PATHS = r"""
options:
  images_dir:
    description:
      - Directory of the base image cache on the host.
    type: path
    default: /var/lib/libvirt/kvmfleet/images
  instances_dir:
    description:
      - Directory holding one sub-directory per instance (disks, seed, console log).
    type: path
    default: /var/lib/libvirt/kvmfleet/instances
"""
