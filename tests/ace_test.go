package tests

import (
	"archive/tar"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appc/spec/schema"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil"
)

// aceModule is the appc spec module whose ACE validator the test runs: the
// version go.mod requires, so the validator and rkt agree on the schema.
const aceModule = "github.com/appc/spec"

// mdsPort is where stage1s point AC_METADATA_URL (rkt's fixed port).
const mdsPort = 18112

// aceImages builds the validator once and packs it as appc's two images,
// main and sidekick, as appc's build-aci script lays them out.
func aceImages(c *testutil.Ctx) (main, sidekick string) {
	c.T.Helper()
	testutil.RequireGo(c.T)
	bin := c.Path("ace-validator")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, aceModule+"/ace")
	cmd.Dir = c.A.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		c.T.Fatalf("building the ACE validator: %v\n%s", err, out)
	}
	data := readFile(c.T, bin)
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", aceModule).Output()
	if err != nil {
		c.T.Fatalf("locating %s: %v", aceModule, err)
	}
	modDir := strings.TrimSpace(string(out))
	pack := func(role string) string {
		tmpl := readFile(c.T, filepath.Join(modDir, "ace", "image_manifest_"+role+".json.in"))
		mj := strings.NewReplacer("@ACI_OS@", runtime.GOOS, "@ACI_ARCH@", runtime.GOARCH).Replace(string(tmpl))
		var m schema.ImageManifest
		if err := json.Unmarshal([]byte(mj), &m); err != nil {
			c.T.Fatalf("ACE %s manifest: %v", role, err)
		}
		return c.WriteImage(&testutil.Image{Manifest: &m, Files: []acibuild.File{
			{Path: "ace-validator", Mode: 0o755, Data: data},
			{Path: "opt", Mode: 0o755, Type: tar.TypeDir},
			{Path: "opt/acvalidator", Mode: 0o755, Type: tar.TypeDir},
		}})
	}
	return pack("main"), pack("sidekick")
}

// mdsPortMu keeps the tests that need the fixed metadata port from racing
// for it within this binary.
var mdsPortMu sync.Mutex

// TestACEValidator runs appc's executor conformance suite: both validator
// apps in one pod sharing an empty volume, registered with a metadata
// service on rkt's port. Every stage (pre-start, main, sidekick,
// post-stop) must report OK and the pod must exit 0.
func TestACEValidator(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	if !c.Stage1().Caps.Has(stage1test.MultiApp) {
		t.Skipf("the validator runs two apps in one pod; the %s stage1 runs one", c.Stage1().Flavor)
	}
	mdsPortMu.Lock()
	defer mdsPortMu.Unlock()
	if l, err := net.Listen("tcp", "127.0.0.1:18112"); err != nil {
		t.Skipf("the pod's AC_METADATA_URL points at 127.0.0.1:%d, which is taken: %v", mdsPort, err)
	} else {
		l.Close()
	}
	mainACI, sidekickACI := aceImages(c)

	m := &metadataService{port: mdsPort, socket: c.Path("mds.sock")}
	m.env = []string{mdsSocketEnv + "=" + m.socket}
	m.proc = c.StartWith(testutil.Opts{Env: m.env}, "metadata-service", "--listen-port=18112")
	waitDial(t, "unix", m.socket, m.proc.Exited)
	waitDial(t, "tcp", m.addr(), m.proc.Exited)

	r := c.RunWith(testutil.Opts{Env: m.env, Timeout: 2 * time.Minute},
		"--mds-register", "--volume=database,kind=empty", mainACI, sidekickACI)
	// The validator prints "<mode> OK" or "<mode> FAIL" followed by
	// "==> reason" lines; the reasons are the useful part of a failure.
	out := testutil.StripLogPrefixes(r.Stdout + r.Stderr)
	for _, mode := range []string{"prestart", "main", "sidekick", "poststop"} {
		if !strings.Contains(out, mode+" OK") {
			t.Errorf("ACE validator: no %q", mode+" OK")
		}
	}
	if r.Code != 0 || t.Failed() {
		t.Fatalf("ACE validator failed: %v", r)
	}
}
