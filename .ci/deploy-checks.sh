#!/usr/bin/env bash
# .ci/deploy-checks.sh: kept for old callers; the checks now live in static-checks.sh
# and smoke-checks.sh (see docs/deployment.md).
#
#   bash .ci/deploy-checks.sh [--static-only | --smoke-only]
set -uo pipefail
here=$(dirname -- "${BASH_SOURCE[0]}")
case ${1:-} in
--static-only) exec bash "$here/static-checks.sh" ;;
--smoke-only) exec bash "$here/smoke-checks.sh" ;;
'') ;;
*)
	echo "usage: $0 [--static-only | --smoke-only]" >&2
	exit 2
	;;
esac
rc=0
bash "$here/static-checks.sh" || rc=1
bash "$here/smoke-checks.sh" || rc=1
exit "$rc"
