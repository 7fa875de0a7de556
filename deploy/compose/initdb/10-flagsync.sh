#!/bin/sh
# Runs once, on an empty data directory: the consent database (with sample records made up for trying
# things out) readable by flagsync_reader, and the state database owned by flagsync_state.
set -eu
reader_password=$(cat /run/secrets/consent_reader_password)
state_password=$(cat /run/secrets/state_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE flagsync_reader LOGIN PASSWORD '$reader_password';
CREATE ROLE flagsync_state LOGIN PASSWORD '$state_password';
CREATE DATABASE consent;
CREATE DATABASE flagsync_state OWNER flagsync_state;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname consent -f /docker-entrypoint-initdb.d/consent/consent.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname consent -c 'GRANT SELECT ON consent_records TO flagsync_reader'
