#!/bin/bash
# Creates (or brings up to date) the two servers' roles and databases:
# role oauth_auth owns database oauth_auth, role oauth_resource owns
# database oauth_resource, and no one else may connect to either. Each role
# is a plain login role: no superuser, no CREATEDB, no CREATEROLE. The
# servers also connect to the `postgres` database (their create-if-missing
# check looks there), which PUBLIC may connect to by default; they change
# nothing in it.
#
# Safe to run again: roles and databases are created only if missing, and
# every run sets the roles' passwords from the secret files, so rotating a
# database password is "change the file, run this, restart the servers"
# (docs/deploy.md). deploy/compose.yaml runs it as the one-shot `db-init`
# service on every `docker compose up`.
#
# Connects with libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE) as
# a superuser whose password is in POSTGRES_PASSWORD_FILE (unset: no
# password, e.g. a local socket). Passwords are read from files and never
# appear in a command line or the environment of a process.
#
#   AUTH_DB_PASSWORD_FILE, RESOURCE_DB_PASSWORD_FILE   required
#   AUTH_DB_NAME (oauth_auth), RESOURCE_DB_NAME (oauth_resource): database
#   and role names
set -euo pipefail

: "${AUTH_DB_PASSWORD_FILE:?AUTH_DB_PASSWORD_FILE must name the auth role password file}"
: "${RESOURCE_DB_PASSWORD_FILE:?RESOURCE_DB_PASSWORD_FILE must name the resource role password file}"
auth_db=${AUTH_DB_NAME:-oauth_auth}
resource_db=${RESOURCE_DB_NAME:-oauth_resource}

for f in "$AUTH_DB_PASSWORD_FILE" "$RESOURCE_DB_PASSWORD_FILE"; do
	if [ ! -s "$f" ]; then
		echo "create-databases: $f is missing or empty" >&2
		exit 1
	fi
done

if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
	# A pgpass file in a private temporary directory rather than
	# PGPASSWORD, which every child process would inherit.
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	umask 077
	printf '*:*:*:*:%s\n' "$(sed -e 's/\\/\\\\/g' -e 's/:/\\:/g' "$POSTGRES_PASSWORD_FILE")" > "$tmp/pgpass"
	export PGPASSFILE="$tmp/pgpass"
fi

# Wait for the server (compose also waits for its healthcheck).
for _ in $(seq 1 30); do
	pg_isready -q && break
	sleep 1
done

# psql reads the passwords itself (\set var `cat file`), so they are never
# an argument of any process; :'var' quotes them as SQL literals. The role
# and database names are checked identifiers (:"var" quotes them).
psql -X -q -v ON_ERROR_STOP=1 \
	-v auth_db="$auth_db" -v resource_db="$resource_db" <<'SQL'
-- Keep the passwords out of the server log even if statement logging is on.
SET log_statement = 'none';
SET log_min_duration_statement = -1;

\set auth_password `cat "$AUTH_DB_PASSWORD_FILE"`
\set resource_password `cat "$RESOURCE_DB_PASSWORD_FILE"`

SELECT format('CREATE ROLE %I LOGIN', :'auth_db')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'auth_db') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'resource_db')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'resource_db') \gexec

ALTER ROLE :"auth_db" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
  NOREPLICATION NOBYPASSRLS PASSWORD :'auth_password';
ALTER ROLE :"resource_db" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
  NOREPLICATION NOBYPASSRLS PASSWORD :'resource_password';

SELECT format('CREATE DATABASE %I OWNER %I', :'auth_db', :'auth_db')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'auth_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'resource_db', :'resource_db')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'resource_db') \gexec

ALTER DATABASE :"auth_db" OWNER TO :"auth_db";
ALTER DATABASE :"resource_db" OWNER TO :"resource_db";

-- Only the owner (and superusers) may connect to each database.
REVOKE ALL ON DATABASE :"auth_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"resource_db" FROM PUBLIC;
SQL

echo "create-databases: roles and databases $auth_db, $resource_db are in place"
