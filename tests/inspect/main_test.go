package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestActionsInOrder builds inspect and checks that actions run in
// command-line order and that --exit-code is applied last.
func TestActionsInOrder(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "inspect")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f := filepath.Join(t.TempDir(), "f")
	cmd := exec.Command(bin, "--exit-code=3", "--write-file="+f+":one", "--read-file="+f,
		"--append-file="+f+":two", "--read-file="+f, "--print-env=INSPECT_T,UNSET_X", "--stat-file=/nonexistent",
		"--print-args", "--", "extra")
	cmd.Env = []string{"INSPECT_T=v"}
	cmd.Stdin = strings.NewReader("in")
	out, err := cmd.Output()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 {
		t.Fatalf("want exit 3, got %v\n%s", err, out)
	}
	want := "<<<one>>>\n<<<onetwo>>>\nINSPECT_T=v\nUNSET_X=<unset>\n/nonexistent: missing\n" +
		`args=["` + bin + `","--exit-code=3","--write-file=` + f + `:one","--read-file=` + f + `","--append-file=` + f +
		`:two","--read-file=` + f + `","--print-env=INSPECT_T,UNSET_X","--stat-file=/nonexistent","--print-args","--","extra"]` + "\n"
	if string(out) != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	// A failing action stops the program with status 1.
	if err := exec.Command(bin, "--read-file=/nonexistent", "--exit-code=5").Run(); err == nil || err.(*exec.ExitError).ExitCode() != 1 {
		t.Errorf("failing action: want exit 1, got %v", err)
	}
}
