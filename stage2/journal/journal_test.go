package journal

import (
	"bufio"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve answers every varlink call on a socket at path with reply, after
// recording the call; it starts after delay, as a starting journald does.
func serve(t *testing.T, path string, delay time.Duration, reply string) <-chan string {
	t.Helper()
	calls := make(chan string, 4)
	ready := make(chan net.Listener, 1)
	go func() {
		time.Sleep(delay)
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Error(err)
			close(ready)
			return
		}
		ready <- l
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					msg, err := r.ReadString(0)
					if err != nil {
						return
					}
					calls <- strings.TrimSuffix(msg, "\x00")
					c.Write([]byte(reply + "\x00"))
				}
			}()
		}
	}()
	t.Cleanup(func() {
		if l, ok := <-ready; ok {
			l.Close()
		}
	})
	return calls
}

func TestSync(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "io.systemd.journal")
	calls := serve(t, sock, 0, `{"parameters":{}}`)
	c, err := Dial(sock, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 2; i++ {
		if err := c.Sync(); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
		if got, want := <-calls, `{"method":"io.systemd.Journal.Synchronize","parameters":{}}`; got != want {
			t.Errorf("call %d: %s, want %s", i, got, want)
		}
	}
}

// A quick app ends before journald is up: the sync waits for its socket.
func TestSyncWaitsForJournald(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "io.systemd.journal")
	serve(t, sock, 150*time.Millisecond, `{"parameters":{}}`)
	start := time.Now()
	c, err := Dial(sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("connected after %v, before the socket existed", d)
	}
}

func TestSyncErrors(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "io.systemd.journal")
	serve(t, sock, 0, `{"error":"org.varlink.service.MethodNotFound","parameters":{}}`)
	c, err := Dial(sock, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Sync(); err == nil || !strings.Contains(err.Error(), "MethodNotFound") {
		t.Errorf("error reply: %v, want journald's error named", err)
	}
	_, err = Dial(filepath.Join(dir, "absent"), 100*time.Millisecond)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("no socket: %v, want ErrUnavailable", err)
	}
}

// A journald that never answers does not hold the reaper past the wait.
func TestSyncTimesOut(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "io.systemd.journal")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(2 * time.Second)
		}
	}()
	c, err := Dial(sock, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := c.Sync(); err == nil {
		t.Error("sync without a reply succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("sync gave up after %v, want about 200ms", d)
	}
}
