package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckUserNamespaces(t *testing.T) {
	old := maxUserNamespaces
	t.Cleanup(func() { maxUserNamespaces = old })
	f := filepath.Join(t.TempDir(), "max_user_namespaces")
	maxUserNamespaces = f
	if err := checkUserNamespaces(); err == nil || !strings.Contains(err.Error(), "no user namespaces") {
		t.Errorf("no file: %v", err)
	}
	os.WriteFile(f, []byte("0\n"), 0o644)
	if err := checkUserNamespaces(); err == nil || !strings.Contains(err.Error(), "turned off") {
		t.Errorf("0: %v", err)
	}
	os.WriteFile(f, []byte("63704\n"), 0o644)
	if err := checkUserNamespaces(); err != nil {
		t.Errorf("63704: %v", err)
	}
	for in, ok := range map[string]bool{"": true, "65536:65536": true, "x:1": false, "-1:2": false} {
		n, err := uidShift(in)
		if (err == nil) != ok || (in == "" && n != -1) || (in == "65536:65536" && n != 65536) {
			t.Errorf("uidShift(%q) = %d, %v", in, n, err)
		}
	}
}
