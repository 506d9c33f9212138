#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image
short_description: Keep a verified base image in a KVM host's image cache
version_added: 0.1.0
description:
  - Ensures that a base image is present in (or absent from) the image cache of a KVM host, the
    directory from which instances' root disks are created as copy-on-write overlays.
  - The image comes either from O(src), a file on the Ansible controller, or from O(remote_src), a
    file already on the host. With O(src) the controller file is transferred only when the host has
    no cached copy with the expected O(sha256).
  - With neither O(src) nor O(remote_src), the module only verifies that the cache holds the image
    with checksum O(sha256), and fails when it does not.
  - Every image is checked before it enters the cache. Its SHA-256 checksum must equal O(sha256),
    and C(qemu-img info) is run with the declared O(format) (never probing it). Images that have a
    backing file or an external data file, that are encrypted, or that are corrupt are refused.
  - The image is written to a temporary file in the cache directory, verified, and then renamed
    into place, so a failure never leaves a partial file in the cache.
  - A cached image that a libvirt domain on the host uses (as a disk or in a disk's backing chain)
    is never replaced or removed; the module fails and names the domains.
author:
  - kvmfleet developers (@kvmfleet)
options:
  name:
    description:
      - File name of the image in the cache directory O(images_dir), for example C(debian-12.qcow2).
      - 1 to 64 characters of C(A-Z a-z 0-9 . _ -), not starting with C(-) or C(.).
    type: str
    required: true
  src:
    description:
      - Path of the image file on the Ansible controller. Relative paths are searched like the
        C(ansible.builtin.copy) module searches them (for example a role's C(files/) directory).
      - Transferred to the host only when the cache does not already hold the image with the
        expected checksum.
      - Handled by the action plugin of this module; mutually exclusive with O(remote_src).
    type: path
  remote_src:
    description:
      - Path of the image file on the host. It is copied into the cache; the original is left in
        place.
      - Mutually exclusive with O(src).
    type: path
  sha256:
    description:
      - Expected SHA-256 checksum of the image, 64 hexadecimal digits, optionally prefixed by
        C(sha256:).
      - Required when O(state=present).
      - With O(state=absent), when given, the cached file is removed only if it has this checksum;
        a cached file with another checksum makes the module fail.
    type: str
  format:
    description:
      - Format of the image. It is passed to C(qemu-img) explicitly; the format is never probed.
      - A file declared V(raw) that carries a qcow2 header is refused.
    type: str
    choices: [qcow2, raw]
    default: qcow2
  images_dir:
    description:
      - The host's image cache directory. It is created when missing.
    type: path
    default: /var/lib/libvirt/kvmfleet/images
  state:
    description:
      - V(present) makes sure the cache holds the image with checksum O(sha256).
      - V(absent) removes the cached image. Removal is refused while a libvirt domain uses it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - kvmfleet.compute.attributes
  - kvmfleet.compute.libvirt
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
  action:
    support: full
    description: Has an action plugin; with O(src) the controller transfers the file only when the host needs it.
notes:
  - A cached image is re-hashed on every run, which reads the whole file.
  - The module needs C(qemu-img) (Debian package C(qemu-utils)) on the host. The libvirt connection
    (O(uri)) is used only to find the domains that use a cached image before it is replaced or removed.
seealso:
  - module: kvmfleet.compute.domain
  - module: kvmfleet.compute.host_facts
"""

EXAMPLES = r"""
- name: Push the tiny guest image from the controller to every compute host
  kvmfleet.compute.image:
    name: kvmfleet-tiny.qcow2
    src: /srv/images/kvmfleet-tiny.qcow2
    sha256: "{{ lookup('ansible.builtin.file', '/srv/images/kvmfleet-tiny.qcow2.sha256').split()[0] }}"

- name: Add an image that was downloaded onto the host
  kvmfleet.compute.image:
    name: debian-12-genericcloud-amd64.qcow2
    remote_src: /tmp/debian-12-genericcloud-amd64.qcow2
    sha256: sha256:5da221d8f7434ee86145e0a6c30c9a6f3bf6c80a53b4ad5b1b1a1a5f8f0b4ad3

- name: Add a raw image
  kvmfleet.compute.image:
    name: appliance.raw
    remote_src: /srv/appliance.raw
    format: raw
    sha256: 3b6a5e0f2b0c8ad1c6f5d3cf2e4b7a5d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b

- name: Remove an image nobody uses any more
  kvmfleet.compute.image:
    name: debian-11-genericcloud-amd64.qcow2
    state: absent
"""

RETURN = r"""
image:
  description: The cached image.
  returned: always
  type: dict
  contains:
    name:
      description: File name in the cache.
      type: str
      sample: kvmfleet-tiny.qcow2
    path:
      description: Absolute path of the cached image.
      type: str
      sample: /var/lib/libvirt/kvmfleet/images/kvmfleet-tiny.qcow2
    state:
      description: V(present) or V(absent) after the run (predicted in check mode).
      type: str
      sample: present
    sha256:
      description: SHA-256 checksum of the cached image.
      type: str
      returned: when O(state=present)
      sample: 0f3c5e8c0a2a43a1e49b2f9a1b5e7d3c8c1b7f9b2e1d0c4a5b6c7d8e9f0a1b2c
    format:
      description: Image format, as reported by C(qemu-img info) for the declared format.
      type: str
      returned: when O(state=present)
      sample: qcow2
    virtual_size:
      description: Size of the disk the image represents, in bytes.
      type: int
      returned: when O(state=present)
      sample: 268435456
    actual_size:
      description: Space the image file takes on disk, in bytes.
      type: int
      returned: when O(state=present)
      sample: 16973824
transferred:
  description: Whether the image file was copied into the cache during this run.
  returned: always
  type: bool
  sample: false
"""

import os
from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kvmfleet.compute.plugins.module_utils import _image
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ImageError, KvmfleetError
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    DEFAULT_URI,
    close,
    connect,
    libvirt_errors,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import (
    validate_abs_path,
    validate_name,
)


@dataclass
class ImageParameters:
    name: str
    src: str | None
    remote_src: str | None
    sha256: str | None
    format: str
    images_dir: str
    state: str
    uri: str

    @classmethod
    def from_module(cls, module):
        p = module.params
        sha256 = p["sha256"]
        return cls(
            name=validate_name(p["name"], "image name"),
            src=p["src"],
            remote_src=validate_abs_path(p["remote_src"], "remote_src") if p["remote_src"] else None,
            sha256=_image.normalise_sha256(sha256) if sha256 is not None else None,
            format=p["format"],
            images_dir=validate_abs_path(p["images_dir"], "images_dir"),
            state=p["state"],
            uri=p["uri"],
        )

    @property
    def path(self):
        return os.path.join(self.images_dir, self.name)


class ImageManager:
    """Makes the cache match the parameters; ``results`` is what the module returns."""

    def __init__(self, module, params):
        self.module = module
        self.params = params
        self.results = {"changed": False, "transferred": False}
        self.before = {"state": "absent"}
        self.after = {"state": "absent"}

    def run(self):
        path = self.params.path
        if os.path.lexists(path):
            if os.path.islink(path) or not os.path.isfile(path):
                raise ImageError(f"{path} exists but is not a regular file; refusing to touch it", image_path=path)
            self.before = {"state": "present", "sha256": _image.sha256_file(path)}
        if self.params.state == "present":
            self.present()
        else:
            self.absent()
        self.results["changed"] = self.before != self.after
        if self.module._diff:
            self.results["diff"] = {"before": self.before, "after": self.after}
        return self.results

    # --- state=present -------------------------------------------------------------------------

    def present(self):
        p = self.params
        self.after = {"state": "present", "sha256": p.sha256}
        if self.before.get("sha256") == p.sha256:
            self.set_image(self.inspect(p.path))
            return
        if p.src is not None:
            raise ImageError("src is a path on the Ansible controller and is handled by the "
                             "kvmfleet.compute.image action plugin; on the host use remote_src")
        if p.remote_src is None:
            # Also the action plugin's question "must src be transferred?": cached=False says yes.
            if self.before["state"] == "absent":
                raise ImageError(f"image {p.name} is not in the cache {p.images_dir} and neither src nor remote_src "
                                 "is given", image_path=p.path, cached=False, before=self.before)
            raise ImageError(f"cached image {p.path} has sha256 {self.before['sha256']}, not {p.sha256}, and neither "
                             "src nor remote_src is given", image_path=p.path, cached=False,
                             before=self.before)
        if not os.path.isfile(p.remote_src):
            raise ImageError(f"remote_src {p.remote_src} does not exist or is not a regular file",
                             image_path=p.remote_src)
        if self.module.check_mode:
            self.verify_checksum(p.remote_src, _image.sha256_file(p.remote_src))
            facts = self.inspect(p.remote_src)
            if self.before["state"] == "present":
                self.refuse_if_in_use("replace")
            self.set_image(facts)
            return
        self.set_image(self.copy_into_cache())
        self.results["transferred"] = True

    def copy_into_cache(self):
        p = self.params
        if not os.path.isdir(p.images_dir):
            os.makedirs(p.images_dir, mode=0o755, exist_ok=True)
        label = p.remote_src
        copy = _image.VerifiedCopy(p.remote_src, p.path)
        try:
            copy.write()
            self.verify_checksum(label, copy.sha256)
            facts = self.inspect(copy.tmp, label=label)
            if self.before["state"] == "present":
                self.refuse_if_in_use("replace")
            copy.commit()
        finally:
            copy.discard()
        return facts

    def verify_checksum(self, path, actual):
        if actual != self.params.sha256:
            raise ImageError(f"checksum mismatch: {path} has sha256 {actual}, expected {self.params.sha256}",
                             image_path=path, actual_sha256=actual, expected_sha256=self.params.sha256)

    def inspect(self, path, label=None):
        """Facts of a verified image file; raises ImageError for anything unsafe or broken.

        ``label`` names the image in messages when ``path`` is the temporary copy.
        """
        fmt = self.params.format
        label = label or path
        _image.refuse_disguised_raw(path, fmt, label)
        if fmt == "qcow2":
            _image.refuse_unsafe_qcow2(path, label)
        rc, out, err = self.module.run_command(
            ["qemu-img", "info", "-U", "--output=json", "-f", fmt, path], check_rc=False)
        if rc != 0:
            detail = (err or out).strip().replace(path, label)
            raise ImageError(f"image {label} cannot be read as {fmt}: {detail}", image_path=label, rc=rc)
        facts = _image.parse_qemu_img_info(out, fmt, label)
        if fmt == "qcow2":
            rc, out, err = self.module.run_command(
                ["qemu-img", "check", "-U", "--output=json", "-f", fmt, path], check_rc=False)
            _image.parse_qemu_img_check(rc, out, label)
        return facts

    def set_image(self, facts, state="present"):
        image = {"name": self.params.name, "path": self.params.path, "state": state}
        if state == "present":
            image["sha256"] = self.params.sha256
            image.update(facts)
        self.results["image"] = image

    # --- state=absent --------------------------------------------------------------------------

    def absent(self):
        p = self.params
        self.after = {"state": "absent"}
        self.results["image"] = {"name": p.name, "path": p.path, "state": "absent"}
        if self.before["state"] == "absent":
            return
        if p.sha256 is not None and self.before["sha256"] != p.sha256:
            raise ImageError(f"cached image {p.path} has sha256 {self.before['sha256']}, not {p.sha256}; "
                             "not removing it",
                             image_path=p.path, actual_sha256=self.before["sha256"])
        self.refuse_if_in_use("remove")
        if not self.module.check_mode:
            os.unlink(p.path)
            _image.fsync_dir(p.images_dir)

    def refuse_if_in_use(self, doing):
        users = self.domains_using(self.params.path)
        if users:
            used_by = ", ".join(sorted(users))
            raise ImageError(f"cannot {doing} image {self.params.path}: it is used by domain(s) {used_by}",
                             image_path=self.params.path, domains=users)

    def domains_using(self, path):
        """{domain name: [disk files]} of every libvirt domain whose disks use ``path``."""
        conn = connect(self.params.uri)
        try:
            users = {}
            with libvirt_errors("list domains"):
                domains = conn.listAllDomains(0)
            for dom in domains:
                with libvirt_errors(f"read XML of domain {dom.name()}"):
                    xml = dom.XMLDesc(0)
                files = _image.files_using(xml, path)
                if files:
                    users[dom.name()] = files
            return users
        finally:
            close(conn)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "src": {"type": "path"},
            "remote_src": {"type": "path"},
            "sha256": {"type": "str"},
            "format": {"type": "str", "choices": list(_image.FORMATS), "default": "qcow2"},
            "images_dir": {"type": "path", "default": _image.DEFAULT_IMAGES_DIR},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "uri": {"type": "str", "default": DEFAULT_URI},
        },
        mutually_exclusive=[("src", "remote_src")],
        required_if=[("state", "present", ("sha256",))],
        supports_check_mode=True,
    )
    try:
        manager = ImageManager(module, ImageParameters.from_module(module))
        module.exit_json(**manager.run())
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())
    except OSError as exc:
        module.fail_json(msg=f"image {module.params['name']}: {exc}")


if __name__ == "__main__":
    main()
