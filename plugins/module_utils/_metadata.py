# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvmfleet instance metadata, kept in the libvirt domain's <metadata> element.

    <metadata>
      <kvmfleet:instance xmlns:kvmfleet="https://kvmfleet.dev/xmlns/instance/1">
        <kvmfleet:uuid>...</kvmfleet:uuid>
        <kvmfleet:name>web1</kvmfleet:name>
        <kvmfleet:disks type="list"><kvmfleet:item>/var/lib/.../disk</kvmfleet:item></kvmfleet:disks>
      </kvmfleet:instance>
    </metadata>

Values are stored as text: scalars come back as strings, lists as lists of strings.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError

NAMESPACE = "https://kvmfleet.dev/xmlns/instance/1"
PREFIX = "kvmfleet"
ROOT_TAG = "instance"
KNOWN_KEYS = ("uuid", "name", "project", "flavor", "image", "server_group", "created_at", "disks")

ET.register_namespace(PREFIX, NAMESPACE)

_KEY_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
_ROOT = f"{{{NAMESPACE}}}{ROOT_TAG}"


def _q(tag):
    return f"{{{NAMESPACE}}}{tag}"


def _text(value, key):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValidationError(f"metadata value for {key!r} must be a string, number, boolean or list of those; got {type(value).__name__}", key=key)


def normalise_metadata(meta):
    """The metadata as parse_metadata would return it after a round trip (text values, None dropped)."""
    out = {}
    for key, value in (meta or {}).items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValidationError(f"metadata key {key!r} is not valid: use letters, digits, '_' or '-', "
                                  "starting with a letter or '_', at most 64 characters", key=repr(key))
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            out[key] = [_text(v, key) for v in value]
        else:
            out[key] = _text(value, key)
    return out


def build_metadata_element(meta, namespaced=True):
    """The <kvmfleet:instance> element for ``meta`` (a flat dict; values scalars or lists of scalars)."""
    q = _q if namespaced else (lambda tag: tag)
    root = ET.Element(q(ROOT_TAG))
    for key, value in normalise_metadata(meta).items():
        child = ET.SubElement(root, q(key))
        if isinstance(value, list):
            child.set("type", "list")
            for item in value:
                ET.SubElement(child, q("item")).text = item
        else:
            child.text = value
    return root


def metadata_xml(meta):
    """The metadata as virDomainSetMetadata wants it: without namespace (libvirt adds PREFIX/NAMESPACE)."""
    return ET.tostring(build_metadata_element(meta, namespaced=False), encoding="unicode")


def element_to_metadata(elem):
    """Parse a <kvmfleet:instance> element into a dict."""
    meta = {}
    for child in elem:
        if not child.tag.startswith(f"{{{NAMESPACE}}}"):
            continue
        key = child.tag.split("}", 1)[1]
        if child.get("type") == "list":
            meta[key] = [(item.text or "") for item in child if item.tag == _q("item")]
        else:
            meta[key] = child.text or ""
    return meta


def find_metadata_element(domain_root):
    """The <kvmfleet:instance> element inside a parsed <domain>, or None."""
    md = domain_root.find("metadata")
    if md is None:
        return None
    return md.find(_ROOT)


def parse_metadata(domain_xml):
    """kvmfleet metadata of a domain XML document; None when the domain is not a kvmfleet domain."""
    root = ET.fromstring(domain_xml) if isinstance(domain_xml, str) else domain_xml
    elem = find_metadata_element(root)
    if elem is None:
        return None
    return element_to_metadata(elem)
