package boot

import (
	"bytes"
	"strings"
	"testing"
)

func TestFailureCause(t *testing.T) {
	for _, tc := range []struct {
		held []string
		code int
		want string
	}{
		{[]string{"stage1 init: creating cgroup x: no such file\n"}, 254, "creating cgroup x: no such file"},
		{[]string{"Cannot bind mount file /a on directory /b.\n", "\n"}, 1, "systemd-nspawn failed before the apps started (status 1): Cannot bind mount file /a on directory /b."},
		{nil, 1, "the pod ended with status 1 before its apps started"},
	} {
		if got := failureCause(tc.held, tc.code); got != tc.want {
			t.Errorf("failureCause(%q, %d) = %q, want %q", tc.held, tc.code, got, tc.want)
		}
	}
}

// Before the apps start, the child's text is held back: shown under debug,
// or once the apps have started; a failure is one "rkt run:" line.
func TestStderrFilter(t *testing.T) {
	started := false
	var out bytes.Buffer
	f := &stderrFilter{out: &out, started: func() bool { return started }}
	f.line("nspawn notice\n")
	if out.Len() != 0 {
		t.Errorf("passed before the apps started: %q", out.String())
	}
	started = true
	f.line("app warning\n")
	if out.String() != "nspawn notice\napp warning\n" {
		t.Errorf("after the apps started: %q", out.String())
	}

	out.Reset()
	f = &stderrFilter{out: &out, started: func() bool { return false }}
	f.line("Failed to mount: No medium found\n")
	if line := f.failure(1, false); line != "rkt run: systemd-nspawn failed before the apps started (status 1): Failed to mount: No medium found\n" || out.String() != "" {
		t.Errorf("failure without debug: %q, printed %q", line, out.String())
	}
	f.line("Failed to mount: No medium found\n")
	f.failure(1, true)
	if !strings.HasPrefix(out.String(), "Failed to mount") {
		t.Errorf("failure under debug did not show the stage1's text: %q", out.String())
	}
}
