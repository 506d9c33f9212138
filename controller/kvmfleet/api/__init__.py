"""The REST service: OpenStack-compatible APIs over the same compute functions the CLI calls.

One ASGI app (``kvmfleet.api.app.create_app``), DevStack's path layout on one port:

    /identity   /identity/v3/...     Keystone v3 subset      kvmfleet.api.identity
    /compute    /compute/v2.1/...    Nova v2.1 + microversions  kvmfleet.api.compute
    /image      /image/v2/...        Glance v2 subset        kvmfleet.api.image
    /network    /network/v2.0/...    Neutron v2.0 subset     kvmfleet.api.network

Handlers are thin (STYLE 13): ``context`` authenticates (a dependency), ``validation`` checks the body
against the resource's JSON schema, ``policy.authorize`` checks the named rule, a ``kvmfleet.compute`` /
``kvmfleet.identity`` / ``kvmfleet.images`` function does the work, a view renders the result. Errors
of the layers below become each service's own fault body in one place (``faults``).
"""
