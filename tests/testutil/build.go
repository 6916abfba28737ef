// Package testutil is the harness of rkt's functional tests: it builds rkt,
// a stage1 image and the inspect program from the source tree once per test
// binary, and gives every test a Ctx with its own data and configuration
// directories, helpers to run rkt and to build test images, and checks that
// nothing (mounts, processes) outlives the test.
//
// The stage1 under test is chosen with RKT_STAGE1 so that the same suite runs
// against every implementation of the stage1 contract:
//
//	RKT_STAGE1=fly (default)  pack stage1-fly with aci/acibuild/mkstage1, as build.sh does
//	RKT_STAGE1=host           pack stage1-host with it (needs systemd-nspawn)
//	RKT_STAGE1=/path/to.aci   any stage1 image; RKT_STAGE1_FLAVOR=fly|host says how it behaves,
//	                          RKT_STAGE1_CAPS=app-status,enter,... what it can do (stage1test.Caps)
//
// RKT_TEST_PREBUILT=DIR takes rkt and inspect from DIR instead of building
// them (with RKT_STAGE1=/path/to.aci): a test binary made with `go test -c`
// then runs where there is no Go toolchain, as in the guest of
// `./build.sh test-host`. Tests that build more at test time skip there.
//
// RKT_TEST_TRACE=1 logs every rkt invocation with its duration (go test -v).
// Every rkt runs with HTTP(S)_PROXY pointing at a closed loopback port, so
// that nothing a test does can reach the network.
package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil/asroot"
)

// Stage1 is the stage1 image the suite runs pods with, and what the tests
// may expect of it.
type Stage1 struct {
	Flavor string // "fly" or "host"
	ACI    string // path of the image, passed as --stage1-path
	// Caps is what the stage1 declares it can do: tests gate on these
	// (Ctx.RequireCaps), not on Flavor.
	Caps stage1test.Caps
}

// EnvStage1Caps overrides the capabilities of the stage1 under test, for
// one given by path that is neither of ours (stage1test.ParseCaps's form:
// "app-status,multi-app,enter,...").
const EnvStage1Caps = "RKT_STAGE1_CAPS"

// flavorStage1 is the Stage1 of an image of flavor: the capabilities of
// the flavor unless RKT_STAGE1_CAPS says otherwise.
func flavorStage1(flavor, aci string) (Stage1, error) {
	if flavor == "" {
		flavor = "host"
	}
	s := Stage1{Flavor: flavor, ACI: aci, Caps: stage1test.Host}
	if flavor == "fly" {
		s.Caps = stage1test.Fly
	}
	if v, ok := os.LookupEnv(EnvStage1Caps); ok {
		caps, err := stage1test.ParseCaps(v)
		if err != nil {
			return s, fmt.Errorf("%s: %w", EnvStage1Caps, err)
		}
		s.Caps = caps
	}
	return s, nil
}

// Artifacts are what every test shares: built once, read-only afterwards.
type Artifacts struct {
	Root    string // the source tree (directory of go.mod)
	Dir     string // where the artifacts live
	Rkt     string // the rkt binary
	Inspect string // the static inspect binary
	Stage1  Stage1

	inspectBin []byte
}

var (
	buildOnce sync.Once
	built     *Artifacts
	buildErr  error
	buildDir  string
)

// Main runs the tests of a package and removes the artifacts afterwards;
// call it from TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	return code
}

// RequireRoot skips t unless it runs as root: pods need mounts, chroot and
// namespaces.
func RequireRoot(t testing.TB) {
	t.Helper()
	asroot.Require(t, "pods need mount namespaces, overlayfs and chroot")
}

// Build returns the shared artifacts, building them on first use. It skips t
// when not root and fails it when the tree does not build.
func Build(t testing.TB) *Artifacts {
	t.Helper()
	RequireRoot(t)
	buildOnce.Do(func() { built, buildErr = build() })
	if buildErr != nil {
		t.Fatalf("building the test artifacts: %v", buildErr)
	}
	return built
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the rkt module")
	}
	return filepath.Dir(mod), nil
}

// EnvPrebuilt names the directory of prebuilt rkt and inspect binaries.
const EnvPrebuilt = "RKT_TEST_PREBUILT"

// Prebuilt is whether the artifacts come from RKT_TEST_PREBUILT: there is
// no source tree or Go toolchain to build more with.
func Prebuilt() bool { return os.Getenv(EnvPrebuilt) != "" }

// RequireGo skips t when the test binary runs on prebuilt artifacts: what
// it builds at test time needs the source tree and the go command.
func RequireGo(t testing.TB) {
	t.Helper()
	if Prebuilt() {
		t.Skipf("builds Go code at test time; %s is set (no source tree or go command here)", EnvPrebuilt)
	}
}

func prebuilt(dir string) (*Artifacts, error) {
	a := &Artifacts{Dir: dir, Rkt: filepath.Join(dir, "rkt"), Inspect: filepath.Join(dir, "inspect")}
	var err error
	if a.inspectBin, err = os.ReadFile(a.Inspect); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvPrebuilt, err)
	}
	if _, err := os.Stat(a.Rkt); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvPrebuilt, err)
	}
	stage1, flavor := os.Getenv("RKT_STAGE1"), os.Getenv("RKT_STAGE1_FLAVOR")
	if !filepath.IsAbs(stage1) {
		return nil, fmt.Errorf("%s needs RKT_STAGE1=/path/to/stage1.aci, not %q", EnvPrebuilt, stage1)
	}
	if _, err := os.Stat(stage1); err != nil {
		return nil, fmt.Errorf("RKT_STAGE1=%s: %w", stage1, err)
	}
	a.Stage1, err = flavorStage1(flavor, stage1)
	return a, err
}

func build() (*Artifacts, error) {
	if dir := os.Getenv(EnvPrebuilt); dir != "" {
		return prebuilt(dir)
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rkt-functional-")
	if err != nil {
		return nil, err
	}
	buildDir = dir
	a := &Artifacts{
		Root:    root,
		Dir:     dir,
		Rkt:     filepath.Join(dir, "rkt"),
		Inspect: filepath.Join(dir, "inspect"),
	}
	stage1, flavor := os.Getenv("RKT_STAGE1"), os.Getenv("RKT_STAGE1_FLAVOR")
	if stage1 == "" {
		stage1 = "fly"
	}
	// rkt is built as build.sh builds it: without the fetchers, which it
	// hands over to rkt-fetch (next to it) when a command needs them.
	targets := []buildTarget{
		{out: a.Rkt, pkg: "./stage0/cmd/rkt", tags: "nofetch", stamp: true},
		{out: filepath.Join(dir, "rkt-fetch"), pkg: "./stage0/cmd/rkt", stamp: true},
		{out: a.Inspect, pkg: "./tests/inspect"},
		// Found next to rkt when it migrates a rkt 1.30 store.
		{out: filepath.Join(dir, "rkt-ql-dump"), pkg: "./aci/migrate/rkt-ql-dump"},
	}
	packer := filepath.Join(dir, "mkstage1")
	var buildID string
	if stage1 == "fly" || stage1 == "host" {
		// rkt gets the build ID the packer gives the stage1 image, as
		// build.sh does: it runs its own build's fly in process.
		if err := goBuild(root, packer, "./aci/acibuild/mkstage1", ""); err != nil {
			return nil, err
		}
		if buildID, err = packerBuildID(root, packer); err != nil {
			return nil, err
		}
	}
	// The builds are independent; the go command shares one cache, so
	// running them side by side mostly overlaps linking.
	var wg sync.WaitGroup
	errs := make(chan error, len(targets))
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var x []string
			if t.stamp && buildID != "" {
				x = append(x, "-X", "github.com/rktng/rkt/common/stage1.BuildID="+buildID)
			}
			errs <- goBuild(root, t.out, t.pkg, t.tags, x...)
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		if e != nil {
			return nil, e
		}
	}
	if a.inspectBin, err = os.ReadFile(a.Inspect); err != nil {
		return nil, err
	}
	switch stage1 {
	case "fly", "host":
		aci := filepath.Join(dir, "stage1-"+stage1+".aci")
		if err := buildStage1ACI(root, packer, stage1, buildID, aci); err != nil {
			return nil, err
		}
		a.Stage1, err = flavorStage1(stage1, aci)
		if err != nil {
			return nil, err
		}
	default:
		if _, err := os.Stat(stage1); err != nil {
			return nil, fmt.Errorf("RKT_STAGE1=%s: %w", stage1, err)
		}
		if a.Stage1, err = flavorStage1(flavor, stage1); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// buildTarget is a binary the functional tests build: stamp links in the
// stage1 build ID.
type buildTarget struct {
	out, pkg, tags string
	stamp          bool
}

// goBuild builds pkg as a static binary with the build tags tags (comma
// separated); ldflags are added to -s -w.
func goBuild(root, out, pkg, tags string, ldflags ...string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-tags="+tags, "-ldflags=-s -w "+strings.Join(ldflags, " "), "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// packerBuildID is the build ID of the tree (`mkstage1 build-id`).
func packerBuildID(root, packer string) (string, error) {
	cmd := exec.Command(packer, "--src", root, "build-id")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("mkstage1 build-id: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// buildStage1ACI packs the stage1 of flavor (fly or host) from the tree
// with the packer build.sh uses (aci/acibuild/mkstage1).
func buildStage1ACI(root, packer, flavor, buildID, out string) error {
	if flavor == "host" {
		if _, err := exec.LookPath("systemd-nspawn"); err != nil {
			return fmt.Errorf("RKT_STAGE1=host: systemd-nspawn is not installed (apt-get install systemd-container): %w", err)
		}
	}
	cmd := exec.Command(packer, "--src", root, "--build-id", buildID, flavor, out)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("packing the %s stage1: %v\n%s", flavor, err, b)
	}
	return nil
}
