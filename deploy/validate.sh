#!/usr/bin/env bash
# Static checks of everything under deploy/, with whichever tools are
# installed; a missing tool is reported and skipped, a failing check fails
# the script. No network, no containers, no cluster.
#
#   bash deploy/validate.sh
#
# Tools: caddy (Debian: caddy), promtool (Debian: prometheus), hadolint,
# kubectl (for kustomize), kubernetes-validate and check-jsonschema (PyPI),
# python3 with PyYAML (Debian: python3-yaml). docs/deploy.md lists what was
# run where.
set -uo pipefail
cd "$(dirname "$0")"

failed=0
ran=0
skipped=()

check() {
	local name=$1
	shift
	printf '==> %s\n' "$name"
	if "$@"; then
		ran=$((ran + 1))
	else
		echo "FAILED: $name" >&2
		failed=$((failed + 1))
	fi
}

have() {
	if command -v "$1" > /dev/null 2>&1; then
		return 0
	fi
	skipped+=("$2 (no $1)")
	return 1
}

caddy_check() {
	local compat=$1
	PROXY_COMPAT=$compat SITE_ADDRESS=https://127.0.0.1:8443 TLS_ISSUER=internal \
		caddy adapt --config Caddyfile --adapter caddyfile > /dev/null 2> /tmp/caddy-adapt.$$ &&
		PROXY_COMPAT=$compat caddy validate --config Caddyfile --adapter caddyfile > /dev/null 2>&1 &&
		caddy fmt Caddyfile | diff -q Caddyfile - > /dev/null
	local rc=$?
	grep '"level":"error"' /tmp/caddy-adapt.$$ >&2
	rm -f /tmp/caddy-adapt.$$
	return $rc
}

if have caddy "Caddyfile"; then
	version=$(caddy version | awk '{print $1}')
	case "$version" in
	v2.6.*| 2.6.*) check "Caddyfile ($version, caddy/proxy-2.6.caddy)" caddy_check caddy/proxy-2.6.caddy ;;
	*) check "Caddyfile ($version, caddy/proxy-2.11.caddy)" caddy_check caddy/proxy-2.11.caddy ;;
	esac
fi

if have hadolint "Dockerfile lint"; then
	check "hadolint Dockerfile" hadolint Dockerfile
fi

if have promtool "alert rules"; then
	check "promtool check rules" promtool check rules prometheus/alerts.yml
	check "promtool test rules" promtool test rules prometheus/alerts.test.yml
fi

if have python3 "JSON and YAML"; then
	check "grafana/dashboard.json is JSON" python3 -m json.tool grafana/dashboard.json /dev/null
	check "compose.yaml hardening" python3 - <<'EOF'
import re, sys
import yaml

doc = yaml.safe_load(open("compose.yaml"))
services = doc["services"]
bad = []
for name, s in services.items():
    if not re.fullmatch(r"\d+:\d+", str(s.get("user", ""))):
        bad.append(f"{name}: user must be numeric uid:gid")
    if s.get("read_only") is not True:
        bad.append(f"{name}: read_only")
    if s.get("cap_drop") != ["ALL"]:
        bad.append(f"{name}: cap_drop ALL")
    if "no-new-privileges:true" not in s.get("security_opt", []):
        bad.append(f"{name}: no-new-privileges")
    if not any(str(t).startswith("/tmp") for t in s.get("tmpfs", [])):
        bad.append(f"{name}: tmpfs /tmp")
    if "ports" in s and name != "caddy":
        bad.append(f"{name}: only caddy publishes ports")
published = sorted({p.split(":")[-1].split("/")[0] for p in services["caddy"]["ports"]})
if published != ["443", "80"]:
    bad.append(f"caddy publishes {published}, not 80 and 443 only")
if services["postgres"]["networks"] != ["db"]:
    bad.append("postgres must be on the db network only")
for net in ("app", "db"):
    if doc["networks"][net].get("internal") is not True:
        bad.append(f"network {net} must be internal")
for name in ("auth-server-1", "auth-server-2", "resource-server", "bootstrap-admin"):
    env = services[name]["environment"]
    for key, value in env.items():
        if re.search(r"(DATABASE_URL|KEY_ENCRYPTION_KEY|PASSWORD)$", key):
            bad.append(f"{name}: {key} set directly; use {key}_FILE")
        if key.endswith("_FILE") and not str(value).startswith("/run/secrets/"):
            bad.append(f"{name}: {key} is not a compose secret")
print("\n".join(bad) or f"{len(services)} services checked")
sys.exit(1 if bad else 0)
EOF
fi

if have kubectl "Kubernetes manifests"; then
	rendered=$(mktemp)
	check "kubectl kustomize kubernetes" sh -c "kubectl kustomize kubernetes > '$rendered'"
	if have kubernetes-validate "Kubernetes schemas"; then
		check "kubernetes-validate --strict" kubernetes-validate --strict --quiet "$rendered"
	fi
	rm -f "$rendered"
fi

if have check-jsonschema "compose and dependabot schemas"; then
	check "compose-spec schema" check-jsonschema --builtin-schema vendor.compose-spec compose.yaml compose.local.yaml
	check "dependabot schema" check-jsonschema --builtin-schema vendor.dependabot ../.github/dependabot.yml
fi

for f in make-secrets.sh healthcheck.sh validate.sh postgres/create-databases.sh; do
	check "bash -n $f" bash -n "$f"
done

echo
for s in "${skipped[@]}"; do echo "skipped: $s"; done
echo "$ran passed, $failed failed"
[ "$failed" -eq 0 ]
