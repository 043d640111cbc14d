#!/bin/sh
# Run once by the postgres image when it initialises the primary's data directory
# (/docker-entrypoint-initdb.d): lets the postgres-replica service stream WAL as the keyward
# role, password-authenticated. The image's own rules do not cover replication connections.
set -eu
echo "host replication keyward all scram-sha-256" >>"$PGDATA/pg_hba.conf"
