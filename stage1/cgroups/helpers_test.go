package cgroups

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func testChild(t *testing.T, out string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestJoinAndRelease$")
	cmd.Env = append(os.Environ(), "CGROUPS_TEST_CHILD=1", "CGROUPS_TEST_OUT="+out)
	return cmd
}

func joinLines(s []string) string { return strings.Join(s, "\n") }

func splitLines(s string) []string { return strings.Fields(s) }
