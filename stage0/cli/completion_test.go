package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	// What each shell's script must hold for the shell to load it.
	want := map[string]string{
		"bash": "complete -o default -F __start_rkt rkt",
		"zsh":  "#compdef rkt",
		"fish": "complete -c rkt",
	}
	for shell, marker := range want {
		var out, errb bytes.Buffer
		if code := Main([]string{"completion", shell}, nil, &out, &errb); code != ExitOK {
			t.Fatalf("completion %s: exit %d, stderr %q", shell, code, errb.String())
		}
		if !strings.Contains(out.String(), marker) {
			t.Errorf("completion %s: output lacks %q", shell, marker)
		}
	}
}

func TestCompletionBadShell(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"completion", "tcsh"}, nil, &out, &errb); code != ExitFailure {
		t.Fatalf("completion tcsh: exit %d, want %d", code, ExitFailure)
	}
	if got := errb.String(); !strings.Contains(got, `unsupported shell "tcsh"`) || strings.Count(got, "completion") != 1 {
		t.Errorf("completion tcsh: stderr %q", got)
	}
	if out.Len() != 0 {
		t.Errorf("completion tcsh wrote %q to stdout", out.String())
	}
}

func TestDocCommandUserConfigDefault(t *testing.T) {
	t.Setenv("HOME", "/home/builder")
	if d := DocCommand().PersistentFlags().Lookup("user-config").DefValue; strings.Contains(d, "builder") {
		t.Errorf("documented --user-config default %q is the builder's", d)
	}
}

func TestDocCommandListsPodFlags(t *testing.T) {
	root := DocCommand()
	for _, tc := range []struct{ cmd, flag string }{{"run", "port"}, {"run", "net"}, {"prepare", "volume"}, {"prepare", "quiet"}} {
		c, _, err := root.Find([]string{tc.cmd})
		if err != nil {
			t.Fatal(err)
		}
		if c.Flags().Lookup(tc.flag) == nil {
			t.Errorf("%s: --%s missing from its documented flags", tc.cmd, tc.flag)
		}
		if c.Flags().Lookup("dir") != nil {
			t.Errorf("%s: global --dir listed as its own flag", tc.cmd)
		}
	}
}
