package network

import (
	"strings"
	"testing"
)

// FuzzParseList: --net values are outside input; parsing never panics and
// what it accepts renders back to a list that parses the same.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"default", "a,b:IP=1.2.3.4;X=y", "host", "none,a", "a:", ":x", "a:b=c:d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseList([]string{s})
		if err != nil {
			return
		}
		again, err := ParseList([]string{strings.Join(l.Strings(), ",")})
		if err != nil || strings.Join(again.Strings(), ",") != strings.Join(l.Strings(), ",") {
			t.Errorf("%q: round trip %q -> %q, %v", s, l.Strings(), again.Strings(), err)
		}
		for _, r := range l {
			if hasControl(r.Name) || hasControl(r.Args) {
				t.Errorf("%q: control character accepted", s)
			}
		}
	})
}
