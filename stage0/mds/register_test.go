package mds

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rktng/rkt/tests/testutil/asroot"
)

func TestListenRegistration(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "mds.sock")
	l, err := ListenRegistration(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v (%v): want a socket with mode 0600", fi, err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := ListenRegistration(path); err == nil || !strings.Contains(err.Error(), "another metadata service") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	l.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}

	// A socket whose service died (nobody listens) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	sl, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	sl.SetUnlinkOnClose(false)
	sl.Close()
	l, err = ListenRegistration(stale)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l.Close()

	// Anything else is not ours to remove.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o644)
	if _, err := ListenRegistration(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Error("the regular file was touched")
	}
}

// helperEnv makes the test binary, re-executed, act as a registration
// client (see TestMain).
const helperEnv = "MDS_TEST_REGISTER_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(helperEnv); sock != "" {
		_, err := Register(sock, Registration{UUID: podA})
		io.WriteString(os.Stdout, "register: "+errString(err)+"\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// TestRegistrationRefusesOtherUsers: even with a world-writable socket,
// only root (or the service's own user) may register pods.
func TestRegistrationRefusesOtherUsers(t *testing.T) {
	asroot.Require(t, "connects as another user")
	// The other user needs to reach the socket and run the test binary.
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "helper")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "mds.sock")
	s := NewServer(Options{Logf: t.Logf})
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := ListenRegistration(sock)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, hl, rl) }()
	defer func() {
		cancel()
		<-done
	}()

	run := func(cred *syscall.Credential) string {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		return string(out)
	}
	// As root the service answers (and refuses this empty registration).
	if out := run(nil); !strings.Contains(out, "refused the registration") {
		t.Errorf("as root: %s", out)
	}
	start := time.Now()
	out := run(&syscall.Credential{Uid: 65534, Gid: 65534})
	if strings.Contains(out, "refused the registration") || strings.Contains(out, "register: ok") {
		t.Errorf("as nobody the service answered: %s", out)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("refusal took %v", time.Since(start))
	}
	if s.pods.len() != 0 {
		t.Errorf("%d pods registered", s.pods.len())
	}
}
