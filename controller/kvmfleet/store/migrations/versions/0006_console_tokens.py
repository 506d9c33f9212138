"""Consoles (issue 10): the one-time tokens of the remote-console URLs, stored hashed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kvmfleet.store.models import UTCDateTime

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('protocol', sa.String(length=16), nullable=False),
    sa.Column('console_type', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('used_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'],
                            name=op.f('fk_console_tokens_instance_uuid_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_console_tokens_token_hash'))
    )
    with op.batch_alter_table('console_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_tokens_instance_uuid'), ['instance_uuid'], unique=False)
        batch_op.create_index('ix_console_tokens_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_console_tokens_expires_at')
        batch_op.drop_index(batch_op.f('ix_console_tokens_instance_uuid'))
    op.drop_table('console_tokens')
