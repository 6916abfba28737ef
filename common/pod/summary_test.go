package pod

import (
	"reflect"
	"testing"

	"github.com/appc/spec/schema"
)

const summaryManifest = `{"acVersion":"0.8.11","acKind":"PodManifest",
 "apps":[{"name":"web","image":{"name":"example.com/web","id":"sha512-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
   "labels":[{"name":"os","value":"linux"},{"name":"version","value":"1.2"}]},
   "app":{"exec":["/bin/web"],"user":"0","group":"0","userAnnotations":{"a":"b"},"userLabels":{"l":"v"}},
   "mounts":[{"volume":"data","path":"/data"}]},
  {"name":"side","image":{"id":"sha512-fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"}}],
 "volumes":[{"name":"data","kind":"host","source":"/srv/data","readOnly":true}],
 "isolators":null,"annotations":null,"ports":null,
 "userAnnotations":{"pa":"pb"},"userLabels":{"pl":"pv"}}`

func TestSummary(t *testing.T) {
	s, err := decodeSummary([]byte(summaryManifest))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Apps) != 2 || s.Apps[0].Name != "web" || s.Apps[1].Name != "side" {
		t.Fatalf("apps: %+v", s.Apps)
	}
	web := s.Apps[0]
	if web.Image.Name == nil || *web.Image.Name != "example.com/web" || web.Image.ID[:11] != "sha512-0123" {
		t.Errorf("image: %+v", web.Image)
	}
	if v, ok := web.ImageLabel("version"); !ok || v != "1.2" {
		t.Errorf("version label: %q %v", v, ok)
	}
	if _, ok := s.Apps[1].ImageLabel("version"); ok || s.Apps[1].Image.Name != nil || s.Apps[1].App != nil {
		t.Errorf("second app: %+v", s.Apps[1])
	}
	if web.App == nil || web.App.UserAnnotations["a"] != "b" || web.App.UserLabels["l"] != "v" {
		t.Errorf("app annotations: %+v", web.App)
	}
	if len(web.Mounts) != 1 || web.Mounts[0].Volume != "data" || web.Mounts[0].Path != "/data" {
		t.Errorf("mounts: %+v", web.Mounts)
	}
	if len(s.Volumes) != 1 || s.Volumes[0].Source != "/srv/data" || s.Volumes[0].ReadOnly == nil || !*s.Volumes[0].ReadOnly {
		t.Errorf("volumes: %+v", s.Volumes)
	}
	if s.UserAnnotations["pa"] != "pb" || s.UserLabels["pl"] != "pv" {
		t.Errorf("pod annotations: %v %v", s.UserAnnotations, s.UserLabels)
	}
	for _, bad := range []string{``, `[]`, `{"acKind":"ImageManifest"}`, `{"acKind":"PodManifest","apps":{}}`} {
		if _, err := decodeSummary([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzSummary: whatever appc's PodManifest accepts, the summary decodes to
// the same values.
func FuzzSummary(f *testing.F) {
	f.Add([]byte(summaryManifest))
	f.Add([]byte(`{"acVersion":"0.8.11","acKind":"PodManifest","apps":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pm := &schema.PodManifest{}
		if pm.UnmarshalJSON(b) != nil {
			return
		}
		s, err := decodeSummary(b)
		if err != nil {
			t.Fatalf("appc accepts it, the summary does not: %v", err)
		}
		if len(s.Apps) != len(pm.Apps) || len(s.Volumes) != len(pm.Volumes) {
			t.Fatalf("%d apps, %d volumes; appc %d, %d", len(s.Apps), len(s.Volumes), len(pm.Apps), len(pm.Volumes))
		}
		if !sameMap(s.UserAnnotations, pm.UserAnnotations) || !sameMap(s.UserLabels, pm.UserLabels) {
			t.Fatalf("pod annotations or labels differ")
		}
		for i, ra := range pm.Apps {
			a := s.Apps[i]
			// (appc prints a missing ID as "-".)
			if a.Name != ra.Name.String() || !ra.Image.ID.Empty() && a.Image.ID != ra.Image.ID.String() {
				t.Fatalf("app %d: %q %q; appc %q %q", i, a.Name, a.Image.ID, ra.Name, ra.Image.ID)
			}
			if (a.Image.Name == nil) != (ra.Image.Name == nil) || a.Image.Name != nil && *a.Image.Name != ra.Image.Name.String() {
				t.Fatalf("app %d: image name differs", i)
			}
			v, ok := a.ImageLabel("version")
			av, aok := ra.Image.Labels.Get("version")
			if v != av || ok != aok {
				t.Fatalf("app %d: version %q %v; appc %q %v", i, v, ok, av, aok)
			}
			if (a.App == nil) != (ra.App == nil) || a.App != nil && (!sameMap(a.App.UserAnnotations, ra.App.UserAnnotations) || !sameMap(a.App.UserLabels, ra.App.UserLabels)) {
				t.Fatalf("app %d: annotations or labels differ", i)
			}
			if len(a.Mounts) != len(ra.Mounts) {
				t.Fatalf("app %d: %d mounts; appc %d", i, len(a.Mounts), len(ra.Mounts))
			}
			for k, m := range ra.Mounts {
				if a.Mounts[k].Volume != m.Volume.String() || a.Mounts[k].Path != m.Path {
					t.Fatalf("app %d mount %d differs", i, k)
				}
			}
		}
		for i, v := range pm.Volumes {
			sv := s.Volumes[i]
			if sv.Name != v.Name.String() || sv.Source != v.Source || !reflect.DeepEqual(sv.ReadOnly, v.ReadOnly) {
				t.Fatalf("volume %d differs", i)
			}
		}
	})
}

func sameMap(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}
