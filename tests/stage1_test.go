package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"

	"github.com/rktng/rkt/tests/testutil"
)

// TestStage1Selection runs pods with the stage1 under test chosen each way
// rkt offers: --stage1-name (from the store), --stage1-from-dir (the
// stage1-images directory of paths.d) and the stage1.d default.
func TestStage1Selection(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	s1 := c.Stage1().ACI
	s1ID := c.Fetch(s1)
	var m schema.ImageManifest
	if err := json.Unmarshal([]byte(c.ExpectOK(c.Rkt("image", "cat-manifest", s1ID)).Stdout), &m); err != nil {
		t.Fatal(err)
	}
	version, ok := m.Labels.Get("version")
	if !ok {
		t.Fatalf("stage1 %s has no version label", m.Name)
	}
	aci := c.InspectACI("--print-msg=stage1 chosen")
	run := func(args ...string) {
		t.Helper()
		r := c.Rkt(append([]string{testutil.Insecure, "run"}, append(args, aci)...)...)
		if r.Code != 0 {
			t.Errorf("choosing the stage1 with %q: %v", args, r)
			return
		}
		expectLine(t, r, "stage1 chosen")
	}
	run(fmt.Sprintf("--stage1-name=%s:%s", m.Name, version))
	run("--stage1-hash=" + s1ID)

	imgs := c.Path("stage1-images")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(imgs, "stage1-test.aci"), readFile(t, s1), 0o644); err != nil {
		t.Fatal(err)
	}
	paths := fmt.Sprintf(`{"rktKind":"paths","rktVersion":"v1","stage1-images":%q}`, imgs)
	if err := writeFileAll(filepath.Join(c.LocalConfig, "paths.d", "paths.json"), paths); err != nil {
		t.Fatal(err)
	}
	run("--stage1-from-dir=stage1-test.aci")

	conf := fmt.Sprintf(`{"rktKind":"stage1","rktVersion":"v1","name":%q,"version":%q,"location":%q}`,
		m.Name, version, filepath.Join(imgs, "stage1-test.aci"))
	if err := writeFileAll(filepath.Join(c.SystemConfig, "stage1.d", "s.json"), conf); err != nil {
		t.Fatal(err)
	}
	run()

	notStage1 := c.InspectACI()
	c.ExpectFailure(c.Rkt(testutil.Insecure, "run", "--stage1-path="+notStage1, aci), "stage1")
}

// TestFlyInProcess: rkt runs the run entrypoint of the fly image of its own
// build in its own process, and execs the one of any other fly image (here
// the same code with another build ID, as a rkt and a stage1 from two
// builds would be). Both ways give the app the same output, exit status and
// pid (rkt's), and a failure the same line and status.
func TestFlyInProcess(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.RequireFlavor("fly")
	testutil.RequireGo(t)
	if s := os.Getenv("RKT_STAGE1"); s != "" && s != "fly" {
		t.Skipf("RKT_STAGE1=%s: the stage1 under test is not this build's fly", s)
	}
	other := c.Path("fly-other.aci")
	pack := exec.Command(filepath.Join(c.A.Dir, "mkstage1"), "--src", c.A.Root, "--build-id", "src-another-build", "fly", other)
	if out, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("packing fly with another build ID: %v\n%s", err, out)
	}
	aci := c.InspectACI("--print-msg=hello", "--print-pid", "--exit-code=7")
	for _, tc := range []struct {
		stage1, mode string
	}{
		{c.Stage1().ACI, "running the fly run entrypoint in this process"},
		{other, "executing stage1 "},
	} {
		s1 := "--stage1-path=" + tc.stage1
		p := c.StartWith(testutil.Opts{}, "--debug", testutil.Insecure, "run", s1, aci)
		r := p.Wait(time.Minute)
		if r.Code != 7 || !strings.Contains(r.Stderr, tc.mode) {
			t.Errorf("with %s: want exit 7 and %q under --debug, got %v", filepath.Base(tc.stage1), tc.mode, r)
		}
		expectLine(t, r, "hello")
		expectLine(t, r, fmt.Sprintf("pid=%d ppid=%d", p.Pid(), os.Getpid()))
		r = c.Rkt(testutil.Insecure, "run", s1, "--ipc=private", aci)
		want := "rkt run: --ipc=private: fly has no IPC namespace, the app uses the host's; use the default stage1\n"
		if r.Code != 254 || r.Stderr != want {
			t.Errorf("with %s, a failing run: want exit 254 and stderr %q, got %v", filepath.Base(tc.stage1), want, r)
		}
	}
}
