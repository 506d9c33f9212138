"""The service (issue 7): identity (domains, users, roles, role assignments, tokens), key pairs, durable
tasks; Glance fields on images, Nova API fields on instances, a domain on projects.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 20:59:55.232360
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kvmfleet.store.models import UTCDateTime

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('domains',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domains')),
    sa.UniqueConstraint('name', name=op.f('uq_domains_name'))
    )
    op.create_table('key_pairs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=255), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_pairs')),
    sa.UniqueConstraint('user_id', 'name', name='uq_key_pairs_user_name')
    )
    op.create_table('roles',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('domain_id', sa.String(length=64), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roles')),
    sa.UniqueConstraint('name', name=op.f('uq_roles_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('domain_id', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('default_project_id', sa.String(length=64), nullable=True),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('password_expires_at', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_users_domain_id_domains')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('domain_id', 'name', name='uq_users_domain_name')
    )
    op.create_table('role_assignments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('role_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=True),
    sa.Column('domain_id', sa.String(length=64), nullable=True),
    sa.CheckConstraint('(project_id IS NULL) <> (domain_id IS NULL)', name=op.f('ck_role_assignments_one_target')),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_role_assignments_domain_id_domains'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_role_assignments_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_id'], ['roles.id'], name=op.f('fk_role_assignments_role_id_roles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_role_assignments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_role_assignments')),
    sa.UniqueConstraint('role_id', 'user_id', 'project_id', 'domain_id', name='uq_role_assignments_target')
    )
    with op.batch_alter_table('role_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_role_assignments_user_id'), ['user_id'], unique=False)

    op.create_table('tokens',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=True),
    sa.Column('domain_id', sa.String(length=64), nullable=True),
    sa.Column('methods', sa.JSON(), nullable=False),
    sa.Column('audit_id', sa.String(length=64), nullable=False),
    sa.Column('issued_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_tokens_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_tokens'))
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('tasks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('batch', sa.String(length=64), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=True),
    sa.Column('owner_pid', sa.Integer(), nullable=True),
    sa.Column('lease_expires_at', UTCDateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('started_at', UTCDateTime(), nullable=True),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_tasks_instance_uuid_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_instance_uuid'), ['instance_uuid'], unique=False)
        batch_op.create_index('ix_tasks_state_created', ['state', 'created_at'], unique=False)

    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('visibility', sa.String(length=16), server_default=sa.text("'public'"), nullable=False))
        batch_op.add_column(sa.Column('protected', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.add_column(sa.Column('container_format', sa.String(length=16), server_default=sa.text("'bare'"), nullable=False))
        batch_op.add_column(sa.Column('checksum', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('os_hash_algo', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('os_hash_value', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('tags', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        # Glance: optional, non-unique names; hidden images (os_hidden, images API 2.7).
        batch_op.add_column(sa.Column('os_hidden', sa.Boolean(), server_default=sa.text('false'), nullable=False))
        batch_op.alter_column('name', existing_type=sa.String(length=255), nullable=True)
        batch_op.drop_constraint('uq_images_name', type_='unique')
        batch_op.create_index(batch_op.f('ix_images_name'), ['name'], unique=False)

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('metadata', sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('key_name', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('reservation_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('launch_index', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('locked', sa.Boolean(), server_default=sa.text('false'), nullable=False))

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('domain_id', sa.String(length=64), server_default=sa.text("'default'"), nullable=False))

    # Nova's service forced_down (os-services 2.11) and the aggregate's updated_at (os-aggregates).
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('forced_down', sa.Boolean(), server_default=sa.text('false'), nullable=False))

    with op.batch_alter_table('aggregates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', UTCDateTime(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('aggregates', schema=None) as batch_op:
        batch_op.drop_column('updated_at')

    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('forced_down')

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('domain_id')

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('locked')
        batch_op.drop_column('launch_index')
        batch_op.drop_column('reservation_id')
        batch_op.drop_column('key_name')
        batch_op.drop_column('description')
        batch_op.drop_column('metadata')

    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_name'))
        batch_op.create_unique_constraint('uq_images_name', ['name'])
        batch_op.alter_column('name', existing_type=sa.String(length=255), nullable=False)
        batch_op.drop_column('os_hidden')
        batch_op.drop_column('tags')
        batch_op.drop_column('os_hash_value')
        batch_op.drop_column('os_hash_algo')
        batch_op.drop_column('checksum')
        batch_op.drop_column('container_format')
        batch_op.drop_column('protected')
        batch_op.drop_column('visibility')

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_state_created')
        batch_op.drop_index(batch_op.f('ix_tasks_instance_uuid'))

    op.drop_table('tasks')
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tokens_user_id'))
        batch_op.drop_index(batch_op.f('ix_tokens_expires_at'))

    op.drop_table('tokens')
    with op.batch_alter_table('role_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_role_assignments_user_id'))

    op.drop_table('role_assignments')
    op.drop_table('users')
    op.drop_table('roles')
    op.drop_table('key_pairs')
    op.drop_table('domains')
