package migrate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"modernc.org/ql"
)

// TestMain builds the helper that reads ql.db (rkt-ql-dump) for the tests
// of the migration.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rkt-ql-dump-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helperPath = filepath.Join(dir, HelperName)
	cmd := exec.Command("go", "build", "-o", helperPath, "./rkt-ql-dump")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building rkt-ql-dump:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestWalName(t *testing.T) {
	for _, p := range []string{"/var/lib/rkt/cas/db/ql.db", "ql.db", "a/b/../ql.db"} {
		if got, want := walName(p), ql.WalName(p); got != want {
			t.Errorf("walName(%q) = %q, ql says %q", p, got, want)
		}
	}
}

func TestMigrateWithoutHelper(t *testing.T) {
	old := helperPath
	helperPath = filepath.Join(t.TempDir(), "none")
	defer func() { helperPath = old }()
	if _, err := os.Stat("/usr/lib/rkt/" + HelperName); err == nil {
		t.Skip("a helper is installed in /usr/lib/rkt")
	}
	cas := filepath.Join(t.TempDir(), "cas")
	legacyImage(t, cas, "example.com/one")
	legacyDB(t, cas)
	_, err := Migrate(newStore(t, cas), cas, Options{})
	if err == nil || !errors.Is(err, ErrNoHelper) {
		t.Fatalf("without the helper: %v, want ErrNoHelper", err)
	}
	if Migrated(cas) || !Pending(cas) {
		t.Errorf("a failed migration is recorded as done")
	}
}
