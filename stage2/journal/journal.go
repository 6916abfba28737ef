// Package journal asks the pod's journald to read everything written to
// it so far: what `journalctl --sync` does, spoken from inside the stage2
// processes that run right after an app (the reaper, the post-stop
// handlers), so that the pod's way out has no process of its own for it.
//
// The app's output reaches rkt's stdout through journald (the unit's
// journal+console); an app's last lines may still sit unread in its stdout
// stream when the pod's manager exits and journald is killed. journald's
// varlink method io.systemd.Journal.Synchronize answers only once every
// message queued before the call is processed (it runs the reply at idle
// priority), so a sync after the app's death covers all of its output.
package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// Socket is journald's varlink socket in the pod (systemd 246 and later).
const Socket = "/run/systemd/journal/io.systemd.journal"

// method is the varlink call that syncs the journal, as journalctl sends it.
const method = "io.systemd.Journal.Synchronize"

// ErrUnavailable is wrapped when journald's socket did not answer in time.
var ErrUnavailable = errors.New("journald is not answering")

// Conn is a connection to journald, which outlives a chroot: the post-stop
// handlers dial in the stage1 root and sync from the app's.
type Conn struct {
	c    net.Conn
	wait time.Duration
}

// Dial connects to journald's socket at path, waiting up to wait for it to
// appear or accept: the apps do not wait for journald to start, only for
// its sockets, so a quick app may end before journald is up.
func Dial(path string, wait time.Duration) (*Conn, error) {
	deadline := time.Now().Add(wait)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		c, err := net.Dial("unix", path)
		if err == nil {
			return &Conn{c: c, wait: wait}, nil
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("connecting to journald: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connecting to journald (%s) for %v: %w: %w", path, wait, ErrUnavailable, err)
		}
		time.Sleep(delay)
	}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Sync returns once journald has processed everything written to it before
// the call. A varlink message is a JSON object ended by a NUL byte.
func (c *Conn) Sync() error {
	if err := c.c.SetDeadline(time.Now().Add(c.wait)); err != nil {
		return fmt.Errorf("syncing the journal: %w", err)
	}
	req, _ := json.Marshal(map[string]any{"method": method, "parameters": map[string]any{}})
	if _, err := c.c.Write(append(req, 0)); err != nil {
		return fmt.Errorf("syncing the journal: %w", err)
	}
	reply, err := readMessage(c.c)
	if err != nil {
		return fmt.Errorf("syncing the journal: %w", err)
	}
	return parseReply(reply)
}

// readMessage reads one NUL-terminated message.
func readMessage(c net.Conn) ([]byte, error) {
	var msg []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return append(msg, buf[:i]...), nil
		}
		msg = append(msg, buf[:n]...)
		if err != nil {
			return nil, err
		}
		if len(msg) > 64<<10 {
			return nil, errors.New("reply longer than 64 KiB")
		}
	}
}

// parseReply returns the varlink error a reply carries, if any.
func parseReply(b []byte) error {
	var r struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("syncing the journal: journald's reply %q: %w", b, err)
	}
	if r.Error != "" {
		return fmt.Errorf("syncing the journal: journald answered %s", r.Error)
	}
	return nil
}

// Sync connects to the pod's journald and syncs it.
func Sync(wait time.Duration) error {
	c, err := Dial(Socket, wait)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Sync()
}
