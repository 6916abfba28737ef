#!/bin/bash
# test-host.sh BUILDDIR: `./build.sh test-host`. Runs the functional tests
# that depend on the host (cgroups, isolators, machined, journal, stop,
# units, enter, gc) in a Debian 12 guest with systemd as PID 1 and pure
# cgroup v2, under qemu (../shared/vm's scripts; the guest image is built
# once and cached by their build-image.sh).
#
# BUILDDIR holds the built rkt and stage1 images (./build.sh build). The
# guest has no Go: the 9p share gets rkt, stage1-host.aci, inspect, the
# functional test binary (`go test -c ./tests`) and guest.sh, which runs
# the binary on those (RKT_TEST_PREBUILT). Without the guest's scripts
# this skips, saying so, except in CI (CI=true), where it fails.
#
# Settings: RKT_VM_SCRIPTS=DIR (shared/vm), RKT_VM_IMAGE=DIR (default
# /var/tmp/vmcheck/img), RKT_GUEST_TESTS (a -test.run pattern),
# RKT_GUEST_PARALLEL, RKT_TEST_TIME_SCALE, VMRUN_TIMEOUT.
set -euo pipefail
B=$(cd "${1:?usage: $0 BUILDDIR}" && pwd)
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
export CGO_ENABLED=0
log() { printf '==> %s\n' "$*" >&2; }

# The host-dependent tests. Each pod costs 30-100 s in the guest (TCG on a
# loaded machine): keep the list short. TestHostEnterJournalStop is left
# out: its stop includes post-stop handlers and outlasts the stop
# entrypoint's 10 s grace under TCG (enter, journal and stop are covered by
# TestIsolatorsEnter, TestSystemdMachineScope and TestSystemdUnit).
: "${RKT_GUEST_TESTS:=^(TestIsolators(ConfinedApp|OOM|Throttled|Enter|V2ImageAndPod)|TestSystemd.*|TestHostSIGTERMForeground)\$}"

# vm_scripts: RKT_VM_SCRIPTS, else ../shared/vm beside the clone (CI), else
# beside the main worktree (a git worktree elsewhere).
vm_scripts() {
	local d common
	common=$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || echo /nonexistent/.git)
	for d in "${RKT_VM_SCRIPTS:-}" "$ROOT/../shared/vm" "$(dirname "$common")/../shared/vm"; do
		if [ -n "$d" ] && [ -x "$d/vm-run.sh" ] && [ -x "$d/build-image.sh" ]; then
			(cd "$d" && pwd)
			return 0
		fi
	done
	return 1
}

if ! vm=$(vm_scripts); then
	if [ "${CI:-}" = true ]; then
		echo "test-host: the guest's scripts (../shared/vm) are missing; CI must provide them" >&2
		exit 1
	fi
	log "SKIP test-host: no ../shared/vm (set RKT_VM_SCRIPTS=DIR): the systemd and cgroup v2 tests did not run"
	exit 0
fi
if [ ! -e "$B/stage1-images/stage1-host.aci" ]; then
	echo "test-host: $B/stage1-images/stage1-host.aci missing (systemd-nspawn not installed?)" >&2
	exit 1
fi
share=$B/vm-share
img=${RKT_VM_IMAGE:-/var/tmp/vmcheck/img}
rm -rf "$share" && mkdir -p "$share"
log "test-host: the test binary and its artifacts"
cp "$B/bin/rkt" "$B/bin/rkt-fetch" "$B/stage1-images/stage1-host.aci" tests/vm/guest.sh "$share/"
go build -trimpath -ldflags="-s -w" -o "$share/inspect" ./tests/inspect
go test -c -o "$share/tests.test" ./tests
log "test-host: the guest image ($img)"
"$vm/build-image.sh" "$img"
log "test-host: booting the guest for $RKT_GUEST_TESTS"
export RKT_GUEST_TESTS
t0=$SECONDS
rc=0
for attempt in 1 2; do
	rc=0
	# One guest at a time on this machine: each wants both cores.
	VMRUN_ENV="RKT_GUEST_TESTS RKT_TEST_TIME_SCALE RKT_GUEST_PARALLEL" VMRUN_SHARE=$share \
		VMRUN_TIMEOUT=${VMRUN_TIMEOUT:-2400} flock "$img/.rkt-test-host.lock" "$vm/vm-run.sh" "$img" 'bash ./guest.sh' || rc=$?
	# 125: the guest never ran the command (a failed boot): once more.
	[ "$rc" = 125 ] || break
	log "test-host: the guest did not start (attempt $attempt)"
done
log "test-host: exit $rc after $((SECONDS - t0)) s for boot, tests and shutdown ($(cat "$img/last-timing" 2>/dev/null || true))"
exit "$rc"
