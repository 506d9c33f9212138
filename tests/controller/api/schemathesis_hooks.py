"""Schemathesis hooks for test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS): Glance's JSON-patch
media types are JSON documents, serialized as such."""

import schemathesis

for media_type in ("application/openstack-images-v2.1-json-patch", "application/openstack-images-v2.0-json-patch"):
    schemathesis.serializer.alias(media_type, "application/json")
