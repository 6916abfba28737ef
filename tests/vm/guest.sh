#!/bin/bash
# guest.sh: runs inside the Debian 12 guest of `./build.sh test-host`
# (systemd PID 1, pure cgroup v2), from the 9p share that holds the
# prebuilt rkt, inspect, stage1-host.aci and the functional test binary
# (`go test -c ./tests`). The guest has no Go: the tests take those
# binaries (RKT_TEST_PREBUILT) and skip what would build more.
#
# The test binary runs in a scope of its own, as from a login shell: pods
# get machine-rkt\x2d….scope in machine.slice; tests that need a service
# make their own units.
set -u
cd "$(dirname "$0")"
SHARE=$(pwd)
RUN=${RKT_GUEST_TESTS:?}
# Pods, overlays and test directories on the guest's ext4, not on 9p.
export TMPDIR=/var/tmp/rkt-tests
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
export RKT_TEST_PREBUILT=$SHARE RKT_STAGE1=$SHARE/stage1-host.aci RKT_STAGE1_FLAVOR=host
export RKT_TEST_TIME_SCALE=${RKT_TEST_TIME_SCALE:-8}
echo "guest: $(systemctl --version | head -1); /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup):" \
	"$(cat /sys/fs/cgroup/cgroup.controllers); PID 1 $(cat /proc/1/comm); $(nproc) CPUs"
t0=$(date +%s)
systemd-run --scope --quiet --unit="rkt-functional-tests-$$" -- \
	"$SHARE/tests.test" -test.run "$RUN" -test.v -test.parallel "${RKT_GUEST_PARALLEL:-2}" -test.timeout 25m \
	>"$SHARE/guest-tests.log" 2>&1
rc=$?
# The verdicts, and the whole output of what failed.
awk 'skip { print; skip = 0 } /^ *--- (PASS|FAIL|SKIP)|^(PASS|FAIL|ok|panic)/ { print; skip = /--- SKIP/ }' "$SHARE/guest-tests.log"
if [ $rc -ne 0 ]; then
	echo "---- guest-tests.log (failed: rc $rc)"
	cat "$SHARE/guest-tests.log"
fi
echo "guest: tests took $(($(date +%s) - t0)) s"
exit $rc
