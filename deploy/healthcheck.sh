#!/bin/bash
# The image's HEALTHCHECK: GET a path on the admin listener and succeed on a
# 200. Neither server has a health subcommand and the runtime image carries
# no curl or wget, so this speaks HTTP/1.0 through bash's /dev/tcp.
#
#   HEALTHCHECK_PORT  admin port: 9080 (auth-server) or 9081 (resource-server)
#   HEALTHCHECK_PATH  /readyz (default: ready to take traffic), /livez, /healthz
#   HEALTHCHECK_HOST  127.0.0.1 unless the admin listener binds elsewhere
set -euo pipefail

host=${HEALTHCHECK_HOST:-127.0.0.1}
port=${HEALTHCHECK_PORT:-9080}
path=${HEALTHCHECK_PATH:-/readyz}

exec 3<>"/dev/tcp/${host}/${port}"
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 3 status <&3
exec 3<&-
case "$status" in
"HTTP/1."?" 200 "*) exit 0 ;;
*)
	printf 'healthcheck: %s%s answered %s\n' "$port" "$path" "${status%$'\r'}" >&2
	exit 1
	;;
esac
