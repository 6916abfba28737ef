package stage1_test

// Helpers for the functional tests: they pack the stage1-host image once
// (with aci/acibuild/mkstage1, as build.sh does) and lay out pods with the
// conformance suite's pod builder (common/stage1/stage1test).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/common/stage1/stage1test"
	"github.com/rktng/rkt/tests/testutil/asroot"
)

var (
	imageOnce sync.Once
	imageDir  string
	imageErr  error
)

// requirePods skips unless the machine can run pods: root, nspawn and a
// static busybox for the test apps (build.sh test installs both).
func requirePods(t testing.TB) {
	t.Helper()
	asroot.Require(t, "pods need namespaces, cgroups and mounts")
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		t.Skip("requires systemd-nspawn (apt-get install systemd-container)")
	}
	stage1test.RequireBusybox(t)
}

// stage1Image builds the image directory (manifest + rootfs) once per test
// binary.
func stage1Image(t testing.TB) string {
	t.Helper()
	imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stage1-image-")
		if err != nil {
			imageErr = err
			return
		}
		imageDir = dir
		cmd := exec.Command("go", "run", "../aci/acibuild/mkstage1", "--dir", filepath.Join(dir, "image"), "host")
		if b, err := cmd.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("packing stage1-host: %v\n%s", err, b)
		}
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return filepath.Join(imageDir, "image")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if imageDir != "" {
		os.RemoveAll(imageDir)
	}
	os.Exit(code)
}

// TestConformance runs the stage1 contract's suite on stage1-host.
func TestConformance(t *testing.T) {
	requirePods(t)
	stage1test.Suite(t, stage1Image(t), stage1test.Host)
}

// newPod lays out a pod of busybox apps for stage1-host.
func newPod(t testing.TB, apps []stage1test.App, volumes ...types.Volume) *stage1test.Pod {
	t.Helper()
	for i := range apps {
		apps[i].Busybox = true
	}
	return stage1test.NewPod(t, stage1Image(t), apps, volumes...)
}

// emptyVolume is a pod volume of kind empty, owned by root.
func emptyVolume(name, mode string) types.Volume {
	zero := 0
	return types.Volume{Name: types.ACName(name), Kind: "empty", Mode: &mode, UID: &zero, GID: &zero}
}

// TestImageManifest: the image names the entrypoints stage1-host answers
// to, at the contract's interface version.
func TestImageManifest(t *testing.T) {
	requirePods(t)
	b, err := os.ReadFile(filepath.Join(stage1Image(t), "manifest"))
	if err != nil {
		t.Fatal(err)
	}
	var m schema.ImageManifest
	if err := m.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if m.Name != stage1.NameHost {
		t.Errorf("name %s, want %s", m.Name, stage1.NameHost)
	}
	for ann, want := range map[string]string{
		stage1.AnnRun: "/init", stage1.AnnEnter: "/enter", stage1.AnnStop: "/stop", stage1.AnnGC: "/gc",
		stage1.AnnInterfaceVersion: strconv.Itoa(stage1.InterfaceVersion),
	} {
		if got, _ := m.Annotations.Get(ann); got != want {
			t.Errorf("annotation %s = %q, want %q", ann, got, want)
		}
	}
	if v, _ := m.Annotations.Get(stage1.AnnSystemdVersion); v == "" {
		t.Errorf("annotation %s missing", stage1.AnnSystemdVersion)
	}
}
