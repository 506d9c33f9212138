# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin libvirt helpers: connection, error translation, power-state names, domain lookup."""

from __future__ import annotations

import contextlib
import functools

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
    DomainNotFound,
    KvmfleetError,
)

try:
    import libvirt
except ImportError as exc:  # the module reports it through missing_required_lib
    libvirt = None
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = exc
else:
    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR = None

DEFAULT_URI = "qemu:///system"

# virDomainState values; kept as numbers so this table works without libvirt installed.
STATE = {
    0: "nostate",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",  # being shut down
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}
STATE_NUM = {v: k for k, v in STATE.items()}

# libvirt error codes we branch on (virErrorNumber)
ERR_NO_SUPPORT = 3
ERR_NO_DOMAIN = 42
ERR_OPERATION_INVALID = 55


def _silence(_ctx, _err):
    """libvirt prints every error to stderr by default; we report them ourselves."""


if HAS_LIBVIRT:
    libvirt.registerErrorHandler(_silence, None)


class libvirt_errors(contextlib.ContextDecorator):
    """Turn ``libvirt.libvirtError`` into ``KvmfleetError("<doing>: <libvirt message>")``.

    Usable as ``with libvirt_errors("start domain web1"):`` or as ``@libvirt_errors("list domains")``.
    A missing domain becomes ``DomainNotFound``.
    """

    def __init__(self, doing):
        self.doing = doing

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not HAS_LIBVIRT or not isinstance(exc, libvirt.libvirtError):
            return False
        code = exc.get_error_code()
        message = exc.get_error_message() or str(exc)
        cls = DomainNotFound if code == ERR_NO_DOMAIN else KvmfleetError
        raise cls(f"{self.doing}: {message}", libvirt_error_code=code) from exc


def require_libvirt():
    if not HAS_LIBVIRT:
        raise KvmfleetError("the python libvirt bindings are not installed (Debian: python3-libvirt)",
                            import_error=str(LIBVIRT_IMPORT_ERROR))


def connect(uri=DEFAULT_URI):
    """Open a read-write connection to ``uri``."""
    require_libvirt()
    with libvirt_errors(f"connect to {uri}"):
        conn = libvirt.open(uri)
    if conn is None:  # old bindings returned None instead of raising
        raise KvmfleetError(f"connect to {uri}: libvirt returned no connection")
    return conn


def close(conn):
    """Close a connection, ignoring errors: the work is done either way."""
    if conn is None:
        return
    with contextlib.suppress(Exception):
        conn.close()


def lookup_domain(conn, name):
    """The domain called ``name``, or None when there is none."""
    try:
        with libvirt_errors(f"look up domain {name}"):
            return conn.lookupByName(name)
    except DomainNotFound:
        return None


def get_domain(conn, name):
    """The domain called ``name``; raise DomainNotFound when there is none."""
    dom = lookup_domain(conn, name)
    if dom is None:
        raise DomainNotFound(f"domain {name} does not exist", name=name)
    return dom


def state_name(num):
    return STATE.get(num, "unknown")


def domain_state(dom):
    """The power state as we name it: libvirt's state, or 'suspended' for shut off with a managed save."""
    with libvirt_errors(f"read state of domain {dom.name()}"):
        num, _reason = dom.state()
        name = state_name(num)
        if name == "shutoff" and dom.hasManagedSaveImage(0):
            return "suspended"
    return name


def with_libvirt_errors(doing):
    """Decorator form taking a format string filled from the wrapped function's keyword arguments."""
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with libvirt_errors(doing.format(**kwargs) if kwargs else doing):
                return func(*args, **kwargs)
        return wrapper
    return decorate


def effective_xml(dom, state=None):
    """The XML of the configuration in effect: the live one, or for a managed save the saved one
    (what the domain will resume with), falling back to the definition where a driver cannot tell."""
    state = state or domain_state(dom)
    if state == "suspended":
        try:
            with libvirt_errors(f"read managed save of domain {dom.name()}"):
                return dom.managedSaveGetXMLDesc(0)
        except KvmfleetError as exc:
            if exc.details.get("libvirt_error_code") != ERR_NO_SUPPORT:
                raise
    with libvirt_errors(f"read definition of domain {dom.name()}"):
        return dom.XMLDesc(0)
