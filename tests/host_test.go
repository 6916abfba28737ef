package tests

import (
	"archive/tar"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// The host stage1 through the CLI: what stage1/ checks on hand-made pod
// directories, here with pods rkt prepared.

// machinedCLIScript runs after testutil's bootstrap (a system bus and a
// machined of its own): rkt run, stop and gc.
const machinedCLIScript = `
rkt() { "$RKT" --dir="$DIR" --insecure-options=image "$@"; }
rkt run --stage1-path="$STAGE1" --uuid-file-save="$WORK/uuid" "$IMAGE" >"$WORK/pod.out" 2>&1 & podpid=$!
for i in $(seq 600); do grep -q ready "$WORK/pod.out" 2>/dev/null && break; sleep 0.05; done
UUID=$(cat "$WORK/uuid")
echo "== list"; machinectl list --no-legend
rkt stop "$UUID"
wait $podpid; echo "== exit $?"
echo "== after"; machinectl list --no-legend
rkt gc --grace-period=0s; echo "== gc $?"
`

// TestHostMachinectl: a pod run by rkt is in `machinectl list` while it
// runs and leaves it when it ends.
func TestHostMachinectl(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.BootsSystemd)
	if comm, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(comm)) == "systemd" {
		t.Skip("starts a machined of its own for hosts without systemd; on this systemd host TestSystemdMachineScope checks the real one")
	}
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := testutil.MachinedCommand(t, ctx, work, machinedCLIScript)
	cmd.Env = append(cmd.Env, "RKT="+c.A.Rkt, "DIR="+c.Dir,
		"STAGE1="+c.Stage1().ACI, "IMAGE="+c.InspectACI("--print-msg=ready", "--sleep=60s"))
	out, err := cmd.CombinedOutput()
	s := string(out)
	uuid, _ := os.ReadFile(filepath.Join(work, "uuid"))
	podOut, _ := os.ReadFile(filepath.Join(work, "pod.out"))
	if err != nil || len(uuid) == 0 {
		t.Fatalf("%v\n%s\npod:\n%s", err, s, podOut)
	}
	if list := testutil.Section(s, "== list", "== exit"); !strings.Contains(list, "rkt-"+string(uuid)) {
		t.Errorf("machinectl list does not show the pod:\n%s", s)
	}
	// The stop's SIGTERM killed the app: its status, 143, is rkt run's.
	if !strings.Contains(s, "== exit 143") {
		t.Errorf("rkt run after rkt stop: want exit 143:\n%s\npod:\n%s", s, podOut)
	}
	if strings.Contains(testutil.Section(s, "== after", "== gc"), "rkt-") {
		t.Errorf("pod still listed after it ended:\n%s", s)
	}
	if !strings.Contains(s, "== gc 0") {
		t.Errorf("gc failed:\n%s", s)
	}
}

// TestHostEnterJournalStop: `rkt enter` runs a command in a running pod
// and passes its status on; `rkt stop` ends the pod in order (SIGTERM to
// the app, post-stop handlers run, rkt run exits 0); the pod's journal
// holds the app's output after it exited.
func TestHostEnterJournalStop(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireCaps(stage1test.Enter | stage1test.BootsSystemd)
	journalctl := c.RequireTool("journalctl")
	host := c.Path("vol")
	if err := os.MkdirAll(host, 0o755); err != nil {
		t.Fatal(err)
	}
	im := c.A.InspectImage("example.com/enterable", "--on-sigterm=0", "--print-msg=ready", "--sleep=120s")
	im.AddMountPoint("vol", "/vol", false)
	im.Manifest.App.EventHandlers = []types.EventHandler{
		{Name: "post-stop", Exec: types.Exec{"/inspect", "--write-file=/vol/post-stop:ran"}},
	}
	if sh, err := os.ReadFile("/bin/busybox"); err == nil {
		im.Files = append(im.Files,
			acibuild.File{Path: "bin", Mode: os.ModeDir | 0o755, Type: tar.TypeDir},
			acibuild.File{Path: "bin/busybox", Mode: 0o755, Data: sh},
			acibuild.File{Path: "bin/sh", Mode: 0o777, Type: tar.TypeSymlink, Linkname: "busybox"})
	}
	uuidFile := c.Path("uuid")
	p := c.StartRun("--uuid-file-save="+uuidFile, "--volume=vol,kind=host,source="+host, c.WriteImage(im))
	waitOutput(t, p, "ready")
	uuid := strings.TrimSpace(string(readFile(t, uuidFile)))

	if _, err := os.Stat("/bin/busybox"); err == nil {
		c.Expect(c.Rkt("enter", uuid, "/bin/sh", "-c", "exit 3"), 3)
		// The app's /proc and /dev are in its own mount namespace,
		// which enter joins.
		c.ExpectOK(c.Rkt("enter", uuid, "/bin/sh", "-c", "test -e /proc/self/status && test -c /dev/null"))
	} else {
		c.Expect(c.Rkt("enter", uuid, "/inspect", "--exit-now=3"), 3)
	}
	r := c.ExpectOK(c.Rkt("enter", uuid, "/inspect", "--print-msg=entered", "--print-env=AC_APP_NAME"))
	expectLine(t, r, "entered")
	expectLine(t, r, "AC_APP_NAME=enterable")

	c.ExpectOK(c.Rkt("stop", uuid))
	r = c.ExpectOK(p.Wait(testutil.Scale(30 * time.Second)))
	expectLine(t, r, "got=SIGTERM")
	if b, err := os.ReadFile(filepath.Join(host, "post-stop")); err != nil || string(b) != "ran" {
		t.Errorf("rkt stop: the post-stop handler did not run: %q %v", b, err)
	}

	jdir := filepath.Join(c.PodDir(uuid), "stage1", "rootfs", "var", "log", "journal")
	out, err := exec.Command(journalctl, "-D", jdir, "--no-pager", "-o", "cat").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ready") || !strings.Contains(string(out), "got=SIGTERM") {
		t.Errorf("journalctl -D %s after the pod exited: %v\n%s", jdir, err, out)
	}
}

// TestHostSIGTERMForeground: SIGTERM to a foreground `rkt run` (a systemd
// unit stopping, Nomad stopping a task) ends the pod in order, and rkt
// exits with the app's status.
func TestHostSIGTERMForeground(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	p, _ := startSleeper(c, "5")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := c.Expect(p.Wait(testutil.Scale(30*time.Second)), 5)
	expectLine(t, r, "got=SIGTERM")
}

// TestMultiAppSharedVolume runs two apps in one pod sharing an empty
// volume: one writes a file, the other waits for it and reads it.
func TestMultiAppSharedVolume(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	if !c.Stage1().Caps.Has(stage1test.MultiApp) {
		t.Skipf("the %s stage1 runs one app per pod", c.Stage1().Flavor)
	}
	// "done" is written after msg is complete: waiting for msg itself could
	// read it between its creation and its content.
	reader := c.A.InspectImage("example.com/reader", "--wait-file=/shared/done", "--read-file=/shared/msg")
	reader.AddMountPoint("shared", "/shared", false)
	writer := c.A.InspectImage("example.com/writer", "--write-file=/shared/msg:hello from the writer", "--write-file=/shared/done:1")
	writer.AddMountPoint("shared", "/shared", false)
	r := c.ExpectOK(c.Run("--volume=shared,kind=empty", c.WriteImage(reader), c.WriteImage(writer)))
	expectLine(t, r, "<<<hello from the writer>>>")
}

// TestHostInteractiveTerminal: with a terminal on stdin (script(1) makes
// one), --interactive joins it to the app: what is typed reaches the app.
// Input typed before the app opened the console may be lost, so the line
// is typed again until the app answers.
func TestHostInteractiveTerminal(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	script := c.RequireTool("script")
	args := []string{c.A.Rkt, "--dir=" + c.Dir, "--local-config=" + c.LocalConfig, "--system-config=" + c.SystemConfig,
		"--user-config=" + c.UserConfig, testutil.Insecure, "run", "--stage1-path=" + c.Stage1().ACI,
		"--interactive", c.InspectACI("--read-line")}
	for i, a := range args {
		args[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qec", strings.Join(args, " "), "/dev/null")
	out, err := os.Create(c.Path("script.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	for tick := time.NewTicker(200 * time.Millisecond); ; {
		select {
		case werr = <-done:
		case <-tick.C:
			in.Write([]byte("typed line\n"))
			continue
		}
		tick.Stop()
		break
	}
	in.Close()
	b, _ := os.ReadFile(out.Name())
	if werr != nil || !strings.Contains(string(b), "line=typed line") {
		t.Errorf("rkt run --interactive on a terminal: %v\n%s", werr, b)
	}
}
