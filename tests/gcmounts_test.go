package tests

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rktng/rkt/tests/testutil"
)

// gcSharedScript runs in a private mount namespace made rshared like a
// systemd host's: a pod runs and exits, the pod's app rootfs gets a shared
// recursive bind of /sys (what rkt 1.30's fly leaves), and gc collects
// the pod. It prints how many /sys/fs/cgroup mounts there are before and
// after, and how many the bind put in the pod.
const gcSharedScript = `
set -eu
mount --make-rshared /
cgroups() { awk '$5 ~ "^/sys/fs/cgroup(/|$)" {n++} END {print n+0}' /proc/self/mountinfo; }
echo "before=$(cgroups)"
"$RKT" $GLOBAL --insecure-options=image run --stage1-path="$STAGE1" --uuid-file-save="$WORK/uuid" "$IMAGE" >"$WORK/run.out" 2>&1
uuid=$(cat "$WORK/uuid")
root="$DIR/pods/run/$uuid/stage1/rootfs/opt/stage2/shared-sys/rootfs/host-sys"
mkdir -p "$root"
mount --rbind /sys "$root"
mount --make-rshared "$root"
echo "bound=$(awk -v d="$root/fs/cgroup" 'index($5, d) == 1 {n++} END {print n+0}' /proc/self/mountinfo)"
"$RKT" $GLOBAL gc --grace-period=0s >"$WORK/gc.out" 2>&1 || echo "gc failed: $(cat "$WORK/gc.out")"
echo "after=$(cgroups)"
awk -v d="$DIR/" 'index($5, d) == 1 {print "left: " $5}' /proc/self/mountinfo
`

// TestGCSharedMounts: gc of a pod holding shared binds of the host's /sys
// leaves the host's mounts alone (it makes the pod's tree private before
// unmounting anything), and removes the pod's own.
func TestGCSharedMounts(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	unshare := c.RequireTool("unshare")
	work := t.TempDir()
	cmd := exec.Command(unshare, "-m", "--propagation", "private", "sh", "-c", gcSharedScript)
	global := strings.Join([]string{"--dir=" + c.Dir, "--system-config=" + c.SystemConfig,
		"--local-config=" + c.LocalConfig, "--user-config=" + c.UserConfig}, " ")
	im := c.A.InspectImage("example.com/shared-sys", "--exit-now=0")
	cmd.Env = append(os.Environ(), "RKT="+c.A.Rkt, "GLOBAL="+global, "DIR="+c.Dir, "WORK="+work,
		"STAGE1="+c.Stage1().ACI, "IMAGE="+c.WriteImage(im))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	s := string(out)
	if err != nil {
		run, _ := os.ReadFile(work + "/run.out")
		t.Fatalf("%v\n%s\nrun:\n%s", err, s, run)
	}
	field := func(k string) string {
		for _, l := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(l, k+"="); ok {
				return v
			}
		}
		return ""
	}
	if before, bound := field("before"), field("bound"); before == "" || before == "0" || bound != before {
		t.Fatalf("the test's bind of /sys did not add cgroup mounts:\n%s", s)
	}
	if field("before") != field("after") {
		t.Errorf("gc changed the host's /sys/fs/cgroup mounts (%s before, %s after):\n%s", field("before"), field("after"), s)
	}
	if strings.Contains(s, "gc failed") || strings.Contains(s, "left: ") {
		t.Errorf("gc did not remove the pod's mounts:\n%s", s)
	}
}
