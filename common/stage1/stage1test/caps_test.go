package stage1test

import "testing"

func TestCapsNames(t *testing.T) {
	for _, c := range []Caps{0, Fly, Host, MultiApp | Isolators} {
		back, err := ParseCaps(c.String())
		if err != nil || back != c {
			t.Errorf("ParseCaps(%q) = %v, %v; want %v", c.String(), back, err, c)
		}
	}
	if _, err := ParseCaps("enter,teleport"); err == nil {
		t.Error("an unknown capability was accepted")
	}
	if !Host.Has(Enter|Networks) || Fly.Has(RecordsAppStatus) {
		t.Errorf("Host %q, Fly %q", Host, Fly)
	}
}
