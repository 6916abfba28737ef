package testutil

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// machined is systemd-machined where Debian installs it.
const machined = "/lib/systemd/systemd-machined"

// machinedBootstrap starts a system bus and a systemd-machined of the
// script's own (machinectl wants /run/systemd/system, which only a
// systemd-booted host has), their logs in $WORK, both killed when the
// script ends; it waits until machinectl answers. It runs in a private
// mount namespace: the tmpfs mounts hide the host's /run/systemd and
// /run/dbus from the script only.
const machinedBootstrap = `
set -u
mkdir -p /run/systemd /run/dbus
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/dbus
mkdir -p /run/systemd/system
dbus-daemon --system --fork --print-pid >"$WORK/dbus.pid" 2>"$WORK/dbus.log"
"$MACHINED" >"$WORK/machined.log" 2>&1 & echo $! >"$WORK/machined.pid"
cleanup() { kill $(cat "$WORK/machined.pid") $(cat "$WORK/dbus.pid") 2>/dev/null; }
trap cleanup EXIT
for i in $(seq 100); do machinectl list >/dev/null 2>&1 && break; sleep 0.05; done
`

// MachinedCommand is the one bootstrap of the machined tests, for hosts
// without systemd as PID 1: a bash command that runs script, in a private
// mount namespace, after starting a system bus and machined of its own
// (their logs go to work, which the script sees as $WORK). It skips t when
// a tool is missing. The caller adds to the command's Env and runs it.
func MachinedCommand(t testing.TB, ctx context.Context, work, script string) *exec.Cmd {
	t.Helper()
	for _, bin := range []string{"dbus-daemon", "machinectl", "unshare", "bash", machined} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("requires %s (apt-get install dbus systemd-container)", bin)
		}
	}
	cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "bash", "-c", machinedBootstrap+script)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "WORK="+work, "MACHINED="+machined)
	return cmd
}

// Section is the text of s from the first from up to the next to (to the
// end without one): one part of a script's output between its markers.
func Section(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}
