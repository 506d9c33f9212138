"""Errors of the image registry beyond the store's own (kvmfleet.store.errors).

The API maps them to Glance's status codes (kvmfleet.api.faults); the CLI prints their one line.
"""

from __future__ import annotations

from kvmfleet.store.errors import Conflict, InvalidInput, NotFound, StoreError


class ImageForbidden(StoreError):
    """Not allowed on this image or attribute (protected, read-only, admin only): Glance's 403."""


class ImageDataRefused(InvalidInput):
    """The data is not the declared disk format, or is unsafe for a host (backing file, external data
    file): Glance's InvalidImageData, 415. Nothing of the data is kept."""


class ImageTooLarge(InvalidInput):
    """The data exceeds the configured image size cap: 413. Nothing of the data is kept."""


class ImageGone(NotFound):
    """The image was deleted while its data was being uploaded: Glance's 410. The data is removed."""


class InvalidImageStatus(Conflict):
    """The image's status does not allow the operation (upload to an active image...): 409."""
