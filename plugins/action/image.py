# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of kvmfleet.compute.image: transfer ``src`` only when the host lacks the image.

1. Run the module with ``_probe``: it reports whether the cache already holds the image with the
   expected sha256 (and verifies it if so) without changing anything.
2. If it does, that result is the answer: nothing is transferred.
3. Otherwise hash ``src`` locally (a wrong file is refused before any byte is sent); in check mode
   stop there and report the predicted change; else transfer ``src`` to the task's remote temp
   directory, run the module with ``remote_src`` pointing at it, and remove the temp directory.
"""

from __future__ import annotations

import hashlib

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

_CHUNK = 1024 * 1024


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _normalise_sha256(value):
    text = str(value).strip().lower()
    return text[len("sha256:"):] if text.startswith("sha256:") else text


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused; the shell's tmpdir is used instead
        args = dict(self._task.args)
        src = args.pop("src", None)
        if src is None or args.get("state", "present") != "present":
            # Nothing to transfer: the module does everything (and rejects src with state=absent).
            if src is not None:
                args["src"] = src
            result.update(self._execute_module(module_name="kvmfleet.compute.image", module_args=args,
                                               task_vars=task_vars))
            return result
        if args.get("remote_src") is not None:
            raise AnsibleActionFail("parameters are mutually exclusive: src|remote_src")
        if not args.get("sha256"):
            raise AnsibleActionFail("sha256 is required when src is given")

        try:
            local = self._find_needle("files", src)
        except AnsibleError as exc:
            raise AnsibleActionFail("src %s: %s" % (src, exc.message)) from exc

        probe = self._execute_module(module_name="kvmfleet.compute.image",
                                     module_args=dict(args, _probe=True), task_vars=task_vars)
        if probe.get("failed") or "probe" not in probe:
            # Failed, or the cache already holds a verified copy: either way that is the answer.
            probe.pop("probe", None)
            result.update(probe)
            return result

        actual = _sha256(local)
        expected = _normalise_sha256(args["sha256"])
        if actual != expected:
            raise AnsibleActionFail("checksum mismatch: src %s has sha256 %s, expected %s; nothing was transferred"
                                    % (local, actual, expected))

        if self._task.check_mode:
            probe.pop("probe", None)
            probe["changed"] = True
            probe["image"]["state"] = "present"
            result.update(probe)
            return result

        if self._connection._shell.tmpdir is None:
            self._make_tmp_path()
        try:
            remote = self._connection._shell.join_path(self._connection._shell.tmpdir, "image-source")
            self._transfer_file(local, remote)
            self._fixup_perms2((self._connection._shell.tmpdir, remote))
            args["remote_src"] = remote
            args["_source_label"] = "%s (from the controller)" % local
            module_result = self._execute_module(module_name="kvmfleet.compute.image", module_args=args,
                                                 task_vars=task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(module_result)
        return result
