package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

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
