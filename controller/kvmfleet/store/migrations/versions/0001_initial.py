"""Initial schema: projects, flavors, images, hosts, aggregates, server groups, instances, allocations,
quotas, instance actions and events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('aggregates',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_aggregates')),
    sa.UniqueConstraint('name', name=op.f('uq_aggregates_name')),
    sa.UniqueConstraint('uuid', name=op.f('uq_aggregates_uuid'))
    )
    op.create_table('flavors',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('root_gb', sa.Integer(), nullable=False),
    sa.Column('ephemeral_gb', sa.Integer(), nullable=False),
    sa.Column('swap', sa.Integer(), nullable=False),
    sa.Column('extra_specs', sa.JSON(), nullable=False),
    sa.Column('is_public', sa.Boolean(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('memory_mb > 0', name=op.f('ck_flavors_memory_positive')),
    sa.CheckConstraint('root_gb >= 0 AND ephemeral_gb >= 0 AND swap >= 0', name=op.f('ck_flavors_disks_not_negative')),
    sa.CheckConstraint('vcpus > 0', name=op.f('ck_flavors_vcpus_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flavors')),
    sa.UniqueConstraint('name', name=op.f('uq_flavors_name'))
    )
    op.create_table('hosts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=True),
    sa.Column('availability_zone', sa.String(length=255), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('cpu_allocation_ratio', sa.Float(), nullable=False),
    sa.Column('ram_allocation_ratio', sa.Float(), nullable=False),
    sa.Column('disk_allocation_ratio', sa.Float(), nullable=False),
    sa.Column('reserved_host_memory_mb', sa.Integer(), nullable=False),
    sa.Column('reserved_host_disk_gb', sa.Integer(), nullable=False),
    sa.Column('reserved_host_cpus', sa.Integer(), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('local_gb', sa.Integer(), nullable=False),
    sa.Column('arch', sa.String(length=32), nullable=True),
    sa.Column('cpu_model', sa.String(length=255), nullable=True),
    sa.Column('virt_types', sa.JSON(), nullable=False),
    sa.Column('hypervisor_type', sa.String(length=64), nullable=True),
    sa.Column('hypervisor_version', sa.String(length=64), nullable=True),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('last_heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('facts', sa.JSON(), nullable=True),
    sa.Column('failed_builds', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hosts')),
    sa.UniqueConstraint('name', name=op.f('uq_hosts_name'))
    )
    op.create_table('projects',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('name', name=op.f('uq_projects_name'))
    )
    op.create_table('quota_defaults',
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('resource', name=op.f('pk_quota_defaults'))
    )
    op.create_table('aggregate_hosts',
    sa.Column('aggregate_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['aggregate_id'], ['aggregates.id'], name=op.f('fk_aggregate_hosts_aggregate_id_aggregates'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_aggregate_hosts_host_id_hosts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('aggregate_id', 'host_id', name=op.f('pk_aggregate_hosts'))
    )
    op.create_table('images',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('file_path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('virtual_size', sa.BigInteger(), nullable=True),
    sa.Column('disk_format', sa.String(length=16), nullable=False),
    sa.Column('arch', sa.String(length=32), nullable=False),
    sa.Column('min_ram', sa.Integer(), nullable=False),
    sa.Column('min_disk', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_images_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    sa.UniqueConstraint('name', name=op.f('uq_images_name'))
    )
    op.create_table('quotas',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('hard_limit', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_quotas_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quotas')),
    sa.UniqueConstraint('project_id', 'resource', name='uq_quotas_project_resource')
    )
    op.create_table('server_groups',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('policy', sa.String(length=32), nullable=False),
    sa.Column('max_server_per_host', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('max_server_per_host IS NULL OR max_server_per_host > 0', name=op.f('ck_server_groups_max_server_per_host')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_server_groups_project_id_projects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_server_groups')),
    sa.UniqueConstraint('project_id', 'name', name='uq_server_groups_project_name')
    )
    op.create_table('instances',
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('flavor_id', sa.String(length=255), nullable=True),
    sa.Column('flavor_name', sa.String(length=255), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('root_gb', sa.Integer(), nullable=False),
    sa.Column('ephemeral_gb', sa.Integer(), nullable=False),
    sa.Column('swap', sa.Integer(), nullable=False),
    sa.Column('flavor_extra_specs', sa.JSON(), nullable=False),
    sa.Column('old_flavor', sa.JSON(), nullable=True),
    sa.Column('new_flavor', sa.JSON(), nullable=True),
    sa.Column('image_id', sa.String(length=36), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('node', sa.String(length=255), nullable=True),
    sa.Column('availability_zone', sa.String(length=255), nullable=True),
    sa.Column('vm_state', sa.String(length=40), nullable=False),
    sa.Column('task_state', sa.String(length=40), nullable=True),
    sa.Column('power_state', sa.String(length=16), nullable=False),
    sa.Column('fault_message', sa.Text(), nullable=True),
    sa.Column('fault_details', sa.Text(), nullable=True),
    sa.Column('fault_created_at', sa.DateTime(), nullable=True),
    sa.Column('server_group_id', sa.String(length=36), nullable=True),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('launched_at', sa.DateTime(), nullable=True),
    sa.Column('terminated_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['flavor_id'], ['flavors.id'], name=op.f('fk_instances_flavor_id_flavors'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_instances_image_id_images'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_instances_project_id_projects')),
    sa.ForeignKeyConstraint(['server_group_id'], ['server_groups.id'], name=op.f('fk_instances_server_group_id_server_groups'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('uuid', name=op.f('pk_instances'))
    )
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.create_index('ix_instances_host', ['host'], unique=False)
        batch_op.create_index('ix_instances_project_deleted', ['project_id', 'deleted_at'], unique=False)

    op.create_table('allocations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.Integer(), nullable=False),
    sa.Column('disk_gb', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('vcpus >= 0 AND memory_mb >= 0 AND disk_gb >= 0', name=op.f('ck_allocations_not_negative')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_allocations_host_id_hosts')),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_allocations_instance_uuid_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocations')),
    sa.UniqueConstraint('instance_uuid', 'kind', name='uq_allocations_instance_kind')
    )
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_allocations_host_id'), ['host_id'], unique=False)

    op.create_table('instance_actions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=True),
    sa.Column('user_id', sa.String(length=255), nullable=True),
    sa.Column('start_time', sa.DateTime(), nullable=False),
    sa.Column('finish_time', sa.DateTime(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['instance_uuid'], ['instances.uuid'], name=op.f('fk_instance_actions_instance_uuid_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_actions'))
    )
    with op.batch_alter_table('instance_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_actions_instance_uuid'), ['instance_uuid'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_actions_request_id'), ['request_id'], unique=False)

    op.create_table('instance_action_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=255), nullable=False),
    sa.Column('start_time', sa.DateTime(), nullable=False),
    sa.Column('finish_time', sa.DateTime(), nullable=True),
    sa.Column('result', sa.String(length=32), nullable=True),
    sa.Column('traceback', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('job_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['action_id'], ['instance_actions.id'], name=op.f('fk_instance_action_events_action_id_instance_actions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_action_events'))
    )
    with op.batch_alter_table('instance_action_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_action_events_action_id'), ['action_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('instance_action_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_action_events_action_id'))

    op.drop_table('instance_action_events')
    with op.batch_alter_table('instance_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_actions_request_id'))
        batch_op.drop_index(batch_op.f('ix_instance_actions_instance_uuid'))

    op.drop_table('instance_actions')
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_allocations_host_id'))

    op.drop_table('allocations')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index('ix_instances_project_deleted')
        batch_op.drop_index('ix_instances_host')

    op.drop_table('instances')
    op.drop_table('server_groups')
    op.drop_table('quotas')
    op.drop_table('images')
    op.drop_table('aggregate_hosts')
    op.drop_table('quota_defaults')
    op.drop_table('projects')
    op.drop_table('hosts')
    op.drop_table('flavors')
    op.drop_table('aggregates')
