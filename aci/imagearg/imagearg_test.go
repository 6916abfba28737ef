package imagearg

import (
	"errors"
	"testing"
)

// aci/fetch's TestParseRef and FuzzParseRef cover the classification; these
// check what is this package's own: names are left unparsed, and the pull
// policies.
func TestParseLeavesNames(t *testing.T) {
	r, err := Parse("example.com/app:1.0,os=linux")
	if err != nil || r.Kind != KindName || r.Raw != "example.com/app:1.0,os=linux" || r.Path != "" {
		t.Errorf("name: %+v, %v", r, err)
	}
	for _, bad := range []string{"", "ftp://x/y.aci", "docker:", "oci:"} {
		if _, err := Parse(bad); !errors.Is(err, ErrBadReference) {
			t.Errorf("%q: err = %v, want ErrBadReference", bad, err)
		}
	}
}

func TestParsePullPolicy(t *testing.T) {
	for _, s := range []string{"new", "update", "never"} {
		if p, err := ParsePullPolicy(s); err != nil || string(p) != s {
			t.Errorf("%s: %q, %v", s, p, err)
		}
	}
	if _, err := ParsePullPolicy("always"); err == nil {
		t.Error("always: accepted")
	}
}
