#!/usr/bin/env bash
# PostgreSQL for the controller tests, without systemd: the Debian cluster 15/main.
#   bash tests/postgres.sh start   create the cluster if missing, start it, create role+database
#                                  kvmfleet_test (CREATEDB: tests make one database each); print the URL
#   bash tests/postgres.sh stop    stop the cluster
#   bash tests/postgres.sh url     print the URL (does not start anything)
# Idempotent. Listens on 127.0.0.1 only (Debian's default listen_addresses=localhost).
set -euo pipefail

VERSION=${KVMFLEET_PG_VERSION:-15}
CLUSTER=${KVMFLEET_PG_CLUSTER:-main}
ROLE=kvmfleet_test
PASSWORD=kvmfleet_test
DB=kvmfleet_test

die() { echo "postgres.sh: $*" >&2; exit 1; }

port() {
  local p
  p=$(pg_lsclusters -h 2>/dev/null | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $3}')
  echo "${p:-5432}"
}

url() { echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$(port)/$DB"; }

running() {
  pg_lsclusters -h 2>/dev/null | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}' | grep -q '^online'
}

psql_admin() { runuser -u postgres -- psql -p "$(port)" -v ON_ERROR_STOP=1 -qAtX "$@"; }

start() {
  command -v pg_ctlcluster >/dev/null || die "pg_ctlcluster not found: install the postgresql package (make deps)"
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$VERSION $CLUSTER"; then
    pg_createcluster "$VERSION" "$CLUSTER" >/dev/null
  fi
  # Without systemd nothing creates the socket directory at boot.
  install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  if ! running; then
    pg_ctlcluster "$VERSION" "$CLUSTER" start || die "cluster $VERSION/$CLUSTER did not start (see /var/log/postgresql/postgresql-$VERSION-$CLUSTER.log)"
  fi
  for _ in $(seq 1 50); do
    psql_admin -c 'select 1' >/dev/null 2>&1 && break
    sleep 0.2
  done
  psql_admin -c 'select 1' >/dev/null || die "cluster $VERSION/$CLUSTER does not answer"
  if [ "$(psql_admin -c "select 1 from pg_roles where rolname='$ROLE'")" != 1 ]; then
    psql_admin -c "create role $ROLE login createdb password '$PASSWORD'"
  fi
  if [ "$(psql_admin -c "select 1 from pg_database where datname='$DB'")" != 1 ]; then
    psql_admin -c "create database $DB owner $ROLE"
  fi
  url
}

stop() {
  if running; then
    pg_ctlcluster "$VERSION" "$CLUSTER" stop
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) die "usage: $0 start|stop|url" ;;
esac
