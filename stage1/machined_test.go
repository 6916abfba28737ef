package stage1_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// machinedScript runs after testutil's bootstrap (a system bus and a
// machined of its own): the pod, then the checks.
const machinedScript = `
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
	p := newPod(t, []stage1test.App{{Name: "long", Exec: []string{"sh", "-c", "touch /tmp/up; exec sleep 1000"}}})
	p.WriteManifests() // the script runs the pod, not Start
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := testutil.MachinedCommand(t, ctx, work, machinedScript)
	cmd.Env = append(cmd.Env, "POD="+p.Dir, "UUID="+p.UUID)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := string(out)
	list := testutil.Section(s, "== list", "== status")
	if !strings.Contains(list, "rkt-"+p.UUID) || !strings.Contains(list, "container") {
		t.Errorf("machinectl list does not show the pod:\n%s", s)
	}
	if !strings.Contains(testutil.Section(s, "== status", "== exit"), "rkt-"+p.UUID) {
		t.Errorf("machinectl status does not show the pod:\n%s", s)
	}
	// SIGTERM ended the app: its status, 143, is the pod's.
	if !strings.Contains(s, "== exit 143") {
		t.Errorf("pod did not stop cleanly:\n%s", s)
	}
	if strings.Contains(testutil.Section(s, "== after", "== gc"), "rkt-") {
		t.Errorf("pod still listed after it ended:\n%s", s)
	}
	if !strings.Contains(s, "== gc 0") {
		t.Errorf("gc failed:\n%s", s)
	}
	if b, _ := os.ReadFile(filepath.Join(work, "pod.out")); len(b) > 0 {
		t.Logf("pod output:\n%s", b)
	}
}
