package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMergesFieldByField(t *testing.T) {
	root := t.TempDir()
	sys, local, user := filepath.Join(root, "sys"), filepath.Join(root, "local"), filepath.Join(root, "user")

	writeFile(t, sys, "paths.d/paths.json", `{"rktKind":"paths","rktVersion":"v1","data":"/sys/data","stage1-images":"/sys/s1"}`)
	writeFile(t, sys, "stage1.d/s.json", `{"rktKind":"stage1","rktVersion":"v1","name":"coreos.com/rkt/stage1-host","version":"1.0","location":"/sys/stage1.aci"}`)
	writeFile(t, sys, "auth.d/a.json", `{"rktKind":"auth","rktVersion":"v1","domains":["a.example","b.example"],"type":"basic","credentials":{"user":"u","password":"p"}}`)
	writeFile(t, sys, "auth.d/docker.json", `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["registry.example"],"credentials":{"user":"du","password":"dp"}}`)

	writeFile(t, local, "paths.d/paths.json", `{"rktKind":"paths","rktVersion":"v1","data":"/local/data"}`)
	writeFile(t, local, "auth.d/b.json", `{"rktKind":"auth","rktVersion":"v1","domains":["b.example"],"type":"oauth","credentials":{"token":"tok"}}`)

	writeFile(t, user, "stage1.d/s.json", `{"rktKind":"stage1","rktVersion":"v1","location":"https://example.com/stage1.aci"}`)
	// Not JSON by name: ignored.
	writeFile(t, user, "paths.d/README", `not json at all`)

	cfg, err := Load(sys, local, user)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Paths.Data != "/local/data" || cfg.Paths.Stage1Images != "/sys/s1" {
		t.Errorf("paths = %+v", cfg.Paths)
	}
	if cfg.Stage1 != (Stage1{"coreos.com/rkt/stage1-host", "1.0", "https://example.com/stage1.aci"}) {
		t.Errorf("stage1 = %+v", cfg.Stage1)
	}
	if got := cfg.AuthHeader("a.example").Get("Authorization"); got != "Basic dTpw" {
		t.Errorf("a.example auth = %q", got)
	}
	if got := cfg.AuthHeader("b.example").Get("Authorization"); got != "Bearer tok" {
		t.Errorf("b.example auth = %q", got)
	}
	if cfg.AuthHeader("c.example") != nil {
		t.Error("c.example has auth")
	}
	if c, ok := cfg.DockerCredentials("registry.example"); !ok || c.User != "du" {
		t.Errorf("docker creds = %+v %v", c, ok)
	}
}

func TestDockerHubAliases(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "auth.d/d.json", `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["docker.io"],"credentials":{"user":"u","password":"p"}}`)
	cfg, err := Load("", dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.DockerCredentials("index.docker.io"); !ok {
		t.Error("docker.io credentials do not apply to index.docker.io")
	}
	if _, ok := cfg.DockerCredentials("quay.io"); ok {
		t.Error("docker.io credentials apply to quay.io")
	}
}

func TestMissingDirsAreEmpty(t *testing.T) {
	cfg, err := Load(filepath.Join(t.TempDir(), "nope"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AuthPerHost) != 0 || cfg.Paths != (Paths{}) {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestBadFiles(t *testing.T) {
	cases := []struct {
		name, rel, content, want string
	}{
		{"bad json", "paths.d/p.json", "{\n\"rktKind\": \"paths\",\n\"rktVersion\": \"v1\",,\n}", "bad JSON at line 3"},
		{"no kind", "paths.d/p.json", `{"rktVersion":"v1"}`, "no rktKind"},
		{"no version", "paths.d/p.json", `{"rktKind":"paths"}`, "no rktVersion"},
		{"kind in wrong dir", "paths.d/p.json", `{"rktKind":"auth","rktVersion":"v1"}`, `kind "auth" does not belong in paths.d (expected "paths")`},
		{"unknown kind", "auth.d/p.json", `{"rktKind":"frobnicate","rktVersion":"v1"}`, `kind "frobnicate" does not belong in auth.d`},
		{"unknown version", "paths.d/p.json", `{"rktKind":"paths","rktVersion":"v2"}`, `unknown rktVersion "v2" for kind "paths"`},
		{"relative data", "paths.d/p.json", `{"rktKind":"paths","rktVersion":"v1","data":"rel/dir"}`, "not an absolute path"},
		{"auth type", "auth.d/a.json", `{"rktKind":"auth","rktVersion":"v1","domains":["x"],"type":"digest","credentials":{}}`, `unknown auth type "digest"`},
		{"auth no domains", "auth.d/a.json", `{"rktKind":"auth","rktVersion":"v1","type":"basic","credentials":{"user":"u","password":"p"}}`, "no domains"},
		{"auth no password", "auth.d/a.json", `{"rktKind":"auth","rktVersion":"v1","domains":["x"],"type":"basic","credentials":{"user":"u"}}`, "no password"},
		{"oauth no token", "auth.d/a.json", `{"rktKind":"auth","rktVersion":"v1","domains":["x"],"type":"oauth","credentials":{}}`, "no oauth token"},
		{"docker no registries", "auth.d/a.json", `{"rktKind":"dockerAuth","rktVersion":"v1","credentials":{"user":"u","password":"p"}}`, "no registries"},
		{"stage1 name only", "stage1.d/s.json", `{"rktKind":"stage1","rktVersion":"v1","name":"x"}`, "without a version"},
		{"stage1 bad scheme", "stage1.d/s.json", `{"rktKind":"stage1","rktVersion":"v1","location":"ftp://x/y.aci"}`, `scheme "ftp"`},
		{"stage1 relative", "stage1.d/s.json", `{"rktKind":"stage1","rktVersion":"v1","location":"stage1.aci"}`, "neither an absolute path nor a URL"},
		{"wrong type", "paths.d/p.json", `{"rktKind":"paths","rktVersion":"v1","data":42}`, "line 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, tc.rel, tc.content)
			_, err := Load("", dir, "")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tc.rel)) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the file and %q", err, tc.want)
			}
		})
	}
}

func TestDuplicateInOneDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "auth.d/1.json", `{"rktKind":"auth","rktVersion":"v1","domains":["x"],"type":"oauth","credentials":{"token":"a"}}`)
	writeFile(t, dir, "auth.d/2.json", `{"rktKind":"auth","rktVersion":"v1","domains":["x"],"type":"oauth","credentials":{"token":"b"}}`)
	_, err := Load(dir, "", "")
	if err == nil || !strings.Contains(err.Error(), `auth for domain "x" is already configured`) || !strings.Contains(err.Error(), "2.json") {
		t.Fatalf("err = %v", err)
	}
}

func TestMarshalJSONShape(t *testing.T) {
	cfg := newConfig()
	cfg.AuthPerHost["b.example"] = Auth{Type: AuthOAuth, Token: "t"}
	cfg.AuthPerHost["a.example"] = Auth{Type: AuthBasic, Basic: BasicCredentials{"u", "p"}}
	cfg.DockerAuth["reg"] = BasicCredentials{"du", "dp"}
	cfg.Paths = Paths{Data: "/var/lib/rkt"}
	cfg.Stage1 = Stage1{Name: "n", Version: "v"}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"stage0":[` +
		`{"rktVersion":"v1","rktKind":"auth","domains":["a.example"],"type":"basic","credentials":{"user":"u","password":"p"}},` +
		`{"rktVersion":"v1","rktKind":"auth","domains":["b.example"],"type":"oauth","credentials":{"token":"t"}},` +
		`{"rktVersion":"v1","rktKind":"dockerAuth","registries":["reg"],"credentials":{"user":"du","password":"dp"}},` +
		`{"rktVersion":"v1","rktKind":"paths","data":"/var/lib/rkt","stage1-images":""},` +
		`{"rktVersion":"v1","rktKind":"stage1","name":"n","version":"v","location":""}]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	// The output is itself loadable configuration, entry by entry.
	var out struct{ Stage0 []json.RawMessage }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, raw := range out.Stage0 {
		var h header
		json.Unmarshal(raw, &h)
		sub := map[string]string{kindAuth: "auth.d", kindDockerAuth: "auth.d", kindPaths: "paths.d", kindStage1: "stage1.d"}[h.RktKind]
		writeFile(t, dir, filepath.Join(sub, string(rune('a'+i))+".json"), string(raw))
	}
	back, err := Load(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b2) != want {
		t.Errorf("round trip: %s", b2)
	}
}
