package stage1_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rktng/rkt/common/stage1/stage1test"
)

// machinedScript runs in a private mount namespace: a system bus and
// systemd-machined of its own (machinectl wants /run/systemd/system, which
// only a systemd-booted host has), then the pod, then the checks.
const machinedScript = `
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
cd "$POD"
# The pod's lock, held by the run entrypoint as stage0 hands it over.
exec 3<"$POD"; flock -x 3
RKT_LOCK_FD=3 ./stage1/rootfs/init --net=host "$UUID" >"$WORK/pod.out" 2>&1 & podpid=$!
exec 3<&-
# The app is up once it touched its file; the run entrypoint's probe
# registration (before nspawn) has come and gone by then.
for i in $(seq 400); do [ -e "$POD/stage1/rootfs/opt/stage2/long/rootfs/tmp/up" ] && break; sleep 0.05; done
echo "== list"; machinectl list --no-legend
echo "== status"; machinectl status "rkt-$UUID" --no-pager | head -5
./stage1/rootfs/stop "$UUID"
wait $podpid; echo "== exit $?"
echo "== after"; machinectl list --no-legend
./stage1/rootfs/gc "$UUID"; echo "== gc $?"
`

func TestMachinectlShowsThePod(t *testing.T) {
	requirePods(t)
	machined := "/lib/systemd/systemd-machined"
	for _, bin := range []string{"dbus-daemon", "machinectl", "unshare", machined} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("requires %s (apt-get install dbus systemd-container)", bin)
		}
	}
	p := newPod(t, []stage1test.App{{Name: "long", Exec: []string{"sh", "-c", "touch /tmp/up; exec sleep 1000"}}})
	p.WriteManifests() // the script runs the pod, not Start
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "bash", "-c", machinedScript)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "WORK="+work, "POD="+p.Dir, "UUID="+p.UUID, "MACHINED="+machined)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := string(out)
	list := section(s, "== list", "== status")
	if !strings.Contains(list, "rkt-"+p.UUID) || !strings.Contains(list, "container") {
		t.Errorf("machinectl list does not show the pod:\n%s", s)
	}
	if !strings.Contains(section(s, "== status", "== exit"), "rkt-"+p.UUID) {
		t.Errorf("machinectl status does not show the pod:\n%s", s)
	}
	// SIGTERM ended the app: its status, 143, is the pod's.
	if !strings.Contains(s, "== exit 143") {
		t.Errorf("pod did not stop cleanly:\n%s", s)
	}
	if strings.Contains(section(s, "== after", "== gc"), "rkt-") {
		t.Errorf("pod still listed after it ended:\n%s", s)
	}
	if !strings.Contains(s, "== gc 0") {
		t.Errorf("gc failed:\n%s", s)
	}
	if b, _ := os.ReadFile(filepath.Join(work, "pod.out")); len(b) > 0 {
		t.Logf("pod output:\n%s", b)
	}
}

func section(s, from, to string) string {
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
