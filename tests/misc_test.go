package tests

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rktng/rkt/tests/testutil"
)

// versionAtLeast compares dotted versions numerically.
func versionAtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := 0; i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		y, _ = strconv.Atoi(b[i])
		if x != y {
			return x > y
		}
	}
	return true
}

// TestVersion parses `rkt version` with the regular expressions Nomad's rkt
// driver uses, and its minimum version.
func TestVersion(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	r := c.ExpectOK(c.Rkt("version"))
	rktRe := regexp.MustCompile(`rkt [vV]ersion[:]? (\d[.\d]+)`)
	appcRe := regexp.MustCompile(`appc [vV]ersion[:]? (\d[.\d]+)`)
	m := rktRe.FindStringSubmatch(r.Stdout)
	if m == nil {
		t.Fatalf("no rkt version in %q", r.Stdout)
	}
	if !versionAtLeast(m[1], "1.27.0") {
		t.Errorf("rkt version %s < 1.27.0, Nomad refuses it", m[1])
	}
	if m := appcRe.FindStringSubmatch(r.Stdout); m == nil || m[1] != "0.8.11" {
		t.Errorf("appc version: got %v in %q, want 0.8.11", m, r.Stdout)
	}
	for _, prefix := range []string{"Go Version: go", "Go OS/Arch: linux/", "Features: "} {
		if !strings.Contains(r.Stdout, "\n"+prefix) {
			t.Errorf("no %q line in %q", prefix, r.Stdout)
		}
	}
	if r.Stderr != "" {
		t.Errorf("version wrote on stderr: %q", r.Stderr)
	}
}

type configOut struct {
	Stage0 []map[string]any `json:"stage0"`
}

func (co configOut) kind(k string) map[string]any {
	for _, e := range co.Stage0 {
		if e["rktKind"] == k {
			return e
		}
	}
	return nil
}

// TestConfig checks `rkt config`: rkt's output shape, the field-by-field
// merge of the system, local and user directories, and bad files refused
// with the file named.
func TestConfig(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	write := func(dir, rel, content string) {
		t.Helper()
		p := dir + "/" + rel
		if err := writeFileAll(p, content); err != nil {
			t.Fatal(err)
		}
	}
	write(c.SystemConfig, "stage1.d/s.json", `{"rktKind":"stage1","rktVersion":"v1","name":"example.com/sys-stage1","version":"1.2.3","location":"/sys/stage1.aci"}`)
	write(c.LocalConfig, "stage1.d/s.json", `{"rktKind":"stage1","rktVersion":"v1","location":"/local/stage1.aci"}`)
	write(c.UserConfig, "paths.d/p.json", `{"rktKind":"paths","rktVersion":"v1","stage1-images":"/user/stage1-images"}`)

	r := c.ExpectOK(c.Rkt("config"))
	var co configOut
	if err := json.Unmarshal([]byte(r.Stdout), &co); err != nil {
		t.Fatalf("config output is not {\"stage0\":[...]}: %v: %v", err, r)
	}
	s1 := co.kind("stage1")
	if s1 == nil {
		t.Fatalf("no stage1 entry in %s", r.Stdout)
	}
	for k, want := range map[string]string{
		"rktVersion": "v1", "name": "example.com/sys-stage1", "version": "1.2.3", "location": "/local/stage1.aci",
	} {
		if s1[k] != want {
			t.Errorf("stage1 %s = %v, want %q (local overrides system field by field)", k, s1[k], want)
		}
	}
	if p := co.kind("paths"); p == nil || p["stage1-images"] != "/user/stage1-images" {
		t.Errorf("paths entry %v: want stage1-images from the user config", p)
	}

	pretty := c.ExpectOK(c.Rkt("config", "--pretty-print"))
	if strings.Count(strings.TrimSpace(pretty.Stdout), "\n") < 3 {
		t.Errorf("--pretty-print is not indented: %q", pretty.Stdout)
	}
	var co2 configOut
	if err := json.Unmarshal([]byte(pretty.Stdout), &co2); err != nil || len(co2.Stage0) != len(co.Stage0) {
		t.Errorf("--pretty-print differs from the compact form: %v %v", err, pretty)
	}

	write(c.LocalConfig, "paths.d/broken.json", `{"rktKind":"paths",`)
	c.ExpectFailure(c.Rkt("config"), "broken.json")
}

// TestBadCommandLine checks that rkt's own usage errors exit 254.
func TestBadCommandLine(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	c.Expect(c.Rkt("list", "--no-such-flag"), 254)
	c.Expect(c.Rkt("no-such-command"), 254)
	c.Expect(c.Rkt("--insecure-options=bogus", "list"), 254)
	c.Expect(c.Rkt("list", "--format=yaml"), 254)
}
