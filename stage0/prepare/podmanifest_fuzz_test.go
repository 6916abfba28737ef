package prepare

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

// fuzzImages knows every image ID starting with sha512-0 (with an app) and
// sha512-1 (without one).
type fuzzImages struct{}

func (fuzzImages) GetImageManifest(key string) (*schema.ImageManifest, error) {
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier("example.com/app")
	switch {
	case strings.HasPrefix(key, "sha512-0"):
		m.App = &types.App{Exec: types.Exec{"/bin/app"}, User: "0", Group: "0"}
	case strings.HasPrefix(key, "sha512-1"):
	default:
		return nil, errors.New("not found")
	}
	return m, nil
}

// FuzzPodManifest feeds --pod-manifest files to LoadPodManifest; a manifest
// it accepts is written into the pod, so it must serialize.
func FuzzPodManifest(f *testing.F) {
	id := "sha512-0" + strings.Repeat("a", 127)
	f.Add(`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"app","image":{"id":"` + id + `"}}]}`)
	f.Add(`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"id":"sha512-1` + strings.Repeat("b", 127) + `"},
"app":{"exec":["/x"],"user":"0","group":"0","environment":[{"name":"A","value":"1"}]}}],
"volumes":[{"name":"v","kind":"empty"}],"ports":[{"name":"p","hostPort":80}],"annotations":[{"name":"a","value":"b"}]}`)
	f.Add(`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[]}`)
	f.Add(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x"}`)
	f.Add(`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"app","image":{"id":"sha512-2"}}]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		p := filepath.Join(t.TempDir(), "pod-manifest")
		if err := os.WriteFile(p, []byte(raw), 0o644); err != nil {
			t.Fatal(err)
		}
		pm, err := LoadPodManifest(p, fuzzImages{})
		if err != nil {
			return
		}
		if len(pm.Apps) == 0 {
			t.Fatal("accepted a pod manifest with no apps")
		}
		for _, ra := range pm.Apps {
			if ra.App == nil {
				t.Fatalf("app %s accepted with no app section", ra.Name)
			}
		}
		if _, err := json.Marshal(pm); err != nil {
			t.Fatalf("pod manifest accepted but does not serialize: %v", err)
		}
	})
}
