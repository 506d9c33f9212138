"""Console tokens (revision 0006): the one-time tokens of the remote-console URLs (Nova's
console_auth_tokens).

Only the SHA-256 of a token is kept; the token itself is in the URL the client was given and nowhere
else. A token is bound to one instance and one protocol (vnc, serial), expires ``expires_at`` and is
consumed by the first connection that presents it (``used_at``, set by a compare-and-set update).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kvmfleet.store.models import Base, utcnow


class ConsoleToken(Base):
    __tablename__ = "console_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    instance_uuid: Mapped[str] = mapped_column(ForeignKey("instances.uuid", ondelete="CASCADE"), index=True)
    protocol: Mapped[str] = mapped_column(String(16))        # vnc | serial
    console_type: Mapped[str] = mapped_column(String(16))    # novnc | serial
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_console_tokens_expires_at", "expires_at"),)
