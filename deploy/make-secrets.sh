#!/usr/bin/env bash
# Makes the secret files deploy/compose.yaml reads, in deploy/secrets/
# (or $SECRETS_DIR). A file that exists is kept, so running this again only
# fills in what is missing; to rotate a secret, see docs/deploy.md.
#
#   postgres_password         the Postgres superuser (used by db-init only)
#   auth_db_password          role oauth_auth       (db-init sets it)
#   resource_db_password      role oauth_resource   (db-init sets it)
#   auth_database_url         AUTH_DATABASE_URL_FILE, built from auth_db_password
#   resource_database_url     RESOURCE_DATABASE_URL_FILE, from resource_db_password
#   auth_key_encryption_key   AUTH_KEY_ENCRYPTION_KEY_FILE (32 random bytes, base64)
#   admin_password            the first admin's password (bootstrap-admin)
#
# The directory is private to its owner (0700); the files in it are 0444
# because the containers read them as their own non-root users (10001,
# 999) through compose's bind mounts, which keep the host's permissions.
# Nothing is printed but file names.
set -euo pipefail

dir=${SECRETS_DIR:-"$(cd "$(dirname "$0")" && pwd)/secrets"}
db_host=${DB_HOST:-postgres}

if ! command -v openssl > /dev/null; then
	echo "make-secrets: openssl is needed (apt-get install openssl)" >&2
	exit 1
fi

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

# put NAME: writes standard input to $dir/NAME unless it exists.
put() {
	local file="$dir/$1"
	if [ -e "$file" ]; then
		echo "kept    $file"
		cat > /dev/null
		return
	fi
	cat > "$file.tmp"
	chmod 0444 "$file.tmp"
	mv "$file.tmp" "$file"
	echo "made    $file"
}

# Hex keeps passwords safe inside a URL without percent-encoding.
password() { openssl rand -hex 32 | tr -d '\n'; }

password | put postgres_password
password | put auth_db_password
password | put resource_db_password
printf 'postgres://oauth_auth:%s@%s:5432/oauth_auth' "$(cat "$dir/auth_db_password")" "$db_host" |
	put auth_database_url
printf 'postgres://oauth_resource:%s@%s:5432/oauth_resource' "$(cat "$dir/resource_db_password")" "$db_host" |
	put resource_database_url
openssl rand -base64 32 | tr -d '\n' | put auth_key_encryption_key
openssl rand -base64 24 | tr -d '\n' | put admin_password

echo "make-secrets: done. Keep a copy of auth_key_encryption_key somewhere safe:"
echo "without it the signing keys in the database cannot be opened."
