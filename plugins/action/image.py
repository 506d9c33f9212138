# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of kvmfleet.compute.image: transfer ``src`` only when the host lacks the image.

1. Run the module without ``src``: it verifies the cached image and succeeds unchanged when the
   cache already holds it with the expected sha256. That result is the answer; nothing is sent.
2. When it fails with ``cached: false`` (missing, or another checksum), hash ``src`` locally so a
   wrong file is refused before any byte is sent; in check mode stop there and report the change.
3. Otherwise transfer ``src`` into the task's remote temp directory, run the module with
   ``remote_src`` pointing at it, and remove the temp directory whatever happens.
"""

from __future__ import annotations

import hashlib

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

_MODULE = "kvmfleet.compute.image"
_CHUNK = 1024 * 1024


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _normalise_sha256(value):
    text = str(value).strip().lower()
    return text.removeprefix("sha256:")


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused; the connection's shell tmpdir is used instead
        args = dict(self._task.args)
        src = args.pop("src", None)
        if src is None or args.get("state", "present") != "present":
            # Nothing to transfer: the module does everything (and rejects src with state=absent).
            if src is not None:
                args["src"] = src
            result.update(self._execute_module(module_name=_MODULE, module_args=args, task_vars=task_vars))
            return result
        if args.get("remote_src") is not None:
            raise AnsibleActionFail("parameters are mutually exclusive: src|remote_src")
        if not args.get("sha256"):
            raise AnsibleActionFail("sha256 is required when src is given")
        try:
            local = self._find_needle("files", src)
        except AnsibleError as exc:
            raise AnsibleActionFail(f"src {src}: {exc.message}") from exc

        probe = self._execute_module(module_name=_MODULE, module_args=args, task_vars=task_vars)
        if not probe.get("failed") or probe.get("cached") is not False:
            # Verified in the cache already, or failed for a reason a transfer cannot fix.
            result.update(probe)
            return result

        expected = _normalise_sha256(args["sha256"])
        actual = _sha256(local)
        if actual != expected:
            raise AnsibleActionFail(f"checksum mismatch: src {local} has sha256 {actual}, expected {expected}; "
                                    "nothing was transferred")

        after = {"state": "present", "sha256": expected}
        if self._task.check_mode:
            result.update(changed=True, transferred=False,
                          image={"name": args["name"], "path": probe.get("image_path"), "state": "present",
                                 "sha256": expected, "format": args.get("format", "qcow2")})
            if self._task.diff:
                result["diff"] = {"before": probe.get("before"), "after": after}
            return result

        if self._connection._shell.tmpdir is None:
            self._make_tmp_path()
        remote = self._connection._shell.join_path(self._connection._shell.tmpdir, "image-source")
        try:
            self._transfer_file(local, remote)
            self._fixup_perms2((self._connection._shell.tmpdir, remote))
            module_result = self._execute_module(module_name=_MODULE, module_args=dict(args, remote_src=remote),
                                                 task_vars=task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        if isinstance(module_result.get("msg"), str):
            # name the controller file, not the temp copy it was read from
            module_result["msg"] = module_result["msg"].replace(remote, f"{local} (from the controller)")
        result.update(module_result)
        return result
