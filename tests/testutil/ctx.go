package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rktng/rkt/common/stage1/stage1test"
)

// DefaultTimeout bounds every rkt invocation; a hung rkt is killed and the
// test fails instead of the whole run timing out.
// Scaled by RKT_TEST_TIME_SCALE (see Scale).
var DefaultTimeout = Scale(60 * time.Second)

// Scale stretches a test's wait by RKT_TEST_TIME_SCALE (an integer, default
// 1): under qemu TCG (`./build.sh test-host`) a pod takes 30-60 times
// longer to start than here. Waits bound hangs; they never time a result.
func Scale(d time.Duration) time.Duration {
	if n, err := strconv.Atoi(os.Getenv("RKT_TEST_TIME_SCALE")); err == nil && n > 1 {
		return d * time.Duration(n)
	}
	return d
}

// Ctx is one test's rkt world: its own data directory and configuration
// directories, so tests never see each other's images or pods and may run in
// parallel.
type Ctx struct {
	T *testing.T
	A *Artifacts

	Dir          string // --dir
	SystemConfig string // --system-config
	LocalConfig  string // --local-config
	UserConfig   string // --user-config
	Scratch      string // the test's own files: images, volumes, outputs

	*state
}

// state is shared by a Ctx and the Ctx of its subtests.
type state struct {
	mu    sync.Mutex
	procs []*Proc
	seq   int
}

func (s *state) next() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// New builds (once) the artifacts and returns a fresh Ctx for t. At the end
// of the test it kills the rkt processes the test left running, garbage
// collects every pod and fails the test if a mount is left under Dir.
func New(t *testing.T) *Ctx {
	t.Helper()
	a := Build(t)
	c := &Ctx{
		T:            t,
		A:            a,
		Dir:          t.TempDir(),
		SystemConfig: t.TempDir(),
		LocalConfig:  t.TempDir(),
		UserConfig:   t.TempDir(),
		Scratch:      t.TempDir(),
		state:        &state{},
	}
	// Registered after the TempDirs, so it runs before they are removed.
	t.Cleanup(c.cleanup)
	return c
}

// Sub returns the Ctx for a subtest t of c's test: the same directories,
// reporting to t.
func (c *Ctx) Sub(t *testing.T) *Ctx {
	cc := *c
	cc.T = t
	return &cc
}

// Stage1 is the stage1 under test.
func (c *Ctx) Stage1() Stage1 { return c.A.Stage1 }

// RequireCaps skips the test unless the stage1 under test declares every
// capability of caps.
func (c *Ctx) RequireCaps(caps stage1test.Caps) {
	c.T.Helper()
	if !c.A.Stage1.Caps.Has(caps) {
		c.T.Skipf("needs a stage1 that can do %s; the %s stage1 under test can do %q", caps, c.A.Stage1.Flavor, c.A.Stage1.Caps)
	}
}

// RequireFlavor skips the test unless the stage1 under test has the
// flavor: for tests that need one run, not a capability (RequireCaps).
func (c *Ctx) RequireFlavor(flavor string) {
	c.T.Helper()
	if c.A.Stage1.Flavor != flavor {
		c.T.Skipf("checks %s stage1 behaviour; the stage1 under test is %s", flavor, c.A.Stage1.Flavor)
	}
}

// RequireTool skips the test unless the host tool is in PATH.
func (c *Ctx) RequireTool(name string) string {
	c.T.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		c.T.Skipf("requires %s on the host: %v", name, err)
	}
	return p
}

func (c *Ctx) cleanup() {
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	// Every pod the test made goes; what stays mounted after gc is a leak
	// (rkt#1922, #3805) and fails the test.
	r := c.Rkt("gc", "--grace-period=0s", "--expire-prepared=0s")
	if r.Code != 0 {
		c.T.Errorf("cleanup: %v", r)
	}
	if ms := MountsUnder(c.Dir); len(ms) > 0 {
		c.T.Errorf("cleanup: mounts left under --dir after gc: %q", ms)
		ForceUnmountUnder(c.Dir)
	}
}

// Result is what one rkt invocation did.
type Result struct {
	Args []string
	// Stdout is rkt's stdout; with the host stage1, without the prefix
	// journald puts before the apps' lines (RawStdout keeps it).
	Stdout, Stderr string
	RawStdout      string
	Code           int   // exit status; 128+N when killed by signal N, -1 when it could not run
	Err            error // not nil when rkt could not be started or timed out
}

func (r Result) String() string {
	s := fmt.Sprintf("rkt %s: exit %d", strings.Join(r.Args, " "), r.Code)
	if r.Err != nil {
		s += fmt.Sprintf(" (%v)", r.Err)
	}
	return s + fmt.Sprintf("\n--- stdout:\n%s--- stderr:\n%s", r.Stdout, r.Stderr)
}

// Lines returns stdout's non-empty lines.
func (r Result) Lines() []string {
	var out []string
	for _, l := range strings.Split(r.Stdout, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// Opts tune one invocation.
type Opts struct {
	Stdin   io.Reader     // default: empty
	Env     []string      // added to the test's environment
	Timeout time.Duration // default DefaultTimeout
	// Wrap is a command that runs rkt: its argv before rkt's (for example
	// unshare and a shell that changes the mount namespace first).
	Wrap []string
}

// globalArgs are the flags that pin rkt to the test's directories.
func (c *Ctx) globalArgs() []string {
	return []string{
		"--dir=" + c.Dir,
		"--system-config=" + c.SystemConfig,
		"--local-config=" + c.LocalConfig,
		"--user-config=" + c.UserConfig,
	}
}

func (c *Ctx) command(o Opts, args []string) *exec.Cmd {
	argv := append([]string{c.A.Rkt}, append(c.globalArgs(), args...)...)
	if len(o.Wrap) > 0 {
		argv = append(append([]string{}, o.Wrap...), argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	// Tests stay off the network: anything rkt would fetch from a remote
	// host goes to a closed local port instead (Go never proxies loopback,
	// so test servers on 127.0.0.1 still work).
	cmd.Env = append(os.Environ(), "HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9", "NO_PROXY=")
	cmd.Env = append(cmd.Env, o.Env...)
	cmd.Stdin = o.Stdin
	// Its own process group, so that a timeout kills what it spawned too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// Rkt runs rkt with the test's global flags and args and waits for it.
func (c *Ctx) Rkt(args ...string) Result {
	return c.RktWith(Opts{}, args...)
}

// RktWith is Rkt with options.
func (c *Ctx) RktWith(o Opts, args ...string) Result {
	c.T.Helper()
	p := c.StartWith(o, args...)
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return p.Wait(timeout)
}

// Proc is an rkt process running in the background.
type Proc struct {
	c      *Ctx
	Cmd    *exec.Cmd
	args   []string
	stdout *os.File
	stderr *os.File
	done   chan struct{}
	res    Result
	start  time.Time
}

// trace (RKT_TEST_TRACE=1) logs every rkt invocation with its duration.
var trace = os.Getenv("RKT_TEST_TRACE") == "1"

// Start starts rkt in the background; Wait collects it. Whatever the test
// does not wait for is killed at the end of the test.
func (c *Ctx) Start(args ...string) *Proc {
	c.T.Helper()
	return c.StartWith(Opts{}, args...)
}

// StartWith is Start with options (Timeout is ignored: pass it to Wait).
func (c *Ctx) StartWith(o Opts, args ...string) *Proc {
	c.T.Helper()
	seq := c.next()
	// Files rather than pipes: a pod's processes may outlive rkt and keep a
	// pipe open, which would block the reader; a file never blocks.
	base := filepath.Join(c.Scratch, fmt.Sprintf("rkt-%d", seq))
	stdout, err := os.Create(base + ".stdout")
	if err != nil {
		c.T.Fatal(err)
	}
	stderr, err := os.Create(base + ".stderr")
	if err != nil {
		c.T.Fatal(err)
	}
	cmd := c.command(o, args)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	p := &Proc{c: c, Cmd: cmd, args: args, stdout: stdout, stderr: stderr, done: make(chan struct{}), start: time.Now()}
	p.res.Args = args
	if err := cmd.Start(); err != nil {
		p.res = Result{Args: args, Code: -1, Err: err}
		close(p.done)
		return p
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.res.Code = exitCode(cmd.ProcessState, err)
		if p.res.Code == -1 {
			p.res.Err = err
		}
		close(p.done)
	}()
	return p
}

func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return -1
	}
	return ps.ExitCode()
}

// Pid is the process id of rkt (with fly, of the app once it has exec'd).
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to rkt.
func (p *Proc) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Exited reports whether rkt has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stdout returns what rkt has written on stdout so far, as Result.Stdout.
func (p *Proc) Stdout() string {
	b, _ := os.ReadFile(p.stdout.Name())
	return p.c.A.appOutput(string(b))
}

// Wait waits up to timeout for rkt to exit, killing its process group
// when the time is up.
func (p *Proc) Wait(timeout time.Duration) Result {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		<-p.done
		p.res.Err = fmt.Errorf("timed out after %v and killed", timeout)
	}
	p.stdout.Close()
	p.stderr.Close()
	o, _ := os.ReadFile(p.stdout.Name())
	e, _ := os.ReadFile(p.stderr.Name())
	p.res.RawStdout, p.res.Stderr = string(o), string(e)
	p.res.Stdout = p.c.A.appOutput(p.res.RawStdout)
	if trace {
		p.c.T.Logf("%v: rkt %s: exit %d", time.Since(p.start).Round(time.Millisecond), strings.Join(p.args, " "), p.res.Code)
	}
	return p.res
}

func (p *Proc) kill() {
	if p.Cmd.Process == nil || p.Exited() {
		return
	}
	// The process group first (rkt and what it started), then rkt itself
	// in case it has left the group.
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	p.Cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// Expect fails the test unless r exited with code.
func (c *Ctx) Expect(r Result, code int) Result {
	c.T.Helper()
	if r.Code != code || r.Err != nil {
		c.T.Fatalf("want exit %d, got %v", code, r)
	}
	return r
}

// ExpectOK fails the test unless r exited 0.
func (c *Ctx) ExpectOK(r Result) Result {
	c.T.Helper()
	return c.Expect(r, 0)
}

// ExpectFailure checks rkt's failure contract: exit 254 and an error on
// stderr that is one line (plus, for bad command lines, the usage hint)
// containing each of want. It returns the error line.
func (c *Ctx) ExpectFailure(r Result, want ...string) string {
	c.T.Helper()
	c.Expect(r, 254)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "run \"rkt help\"") && !strings.Contains(l, "warning:") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		c.T.Errorf("want a one-line error, got %d lines: %v", len(lines), r)
		if len(lines) == 0 {
			return ""
		}
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(lines[0]), strings.ToLower(w)) {
			c.T.Errorf("error %q does not mention %q", lines[0], w)
		}
	}
	return lines[0]
}

// Path returns a path in the test's scratch directory.
func (c *Ctx) Path(name string) string { return filepath.Join(c.Scratch, name) }

// WriteFile writes a scratch file and returns its path.
func (c *Ctx) WriteFile(name, content string) string {
	c.T.Helper()
	p := c.Path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		c.T.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		c.T.Fatal(err)
	}
	return p
}

// Insecure is the global flag tests pass to use their unsigned images.
const Insecure = "--insecure-options=image"

// Fetch imports an ACI (path or URL) and returns its full image ID; fetch
// itself prints rkt's short ID as the last line of its stdout.
func (c *Ctx) Fetch(aci string) string {
	c.T.Helper()
	return c.FetchedID(c.Rkt(Insecure, "fetch", aci))
}

// FetchedID checks that a fetch succeeded and printed rkt's short image ID
// last, and returns the full ID of that image.
func (c *Ctx) FetchedID(r Result) string {
	c.T.Helper()
	c.ExpectOK(r)
	lines := r.Lines()
	if len(lines) == 0 {
		c.T.Fatalf("fetch printed no image ID: %v", r)
	}
	id := strings.TrimSpace(lines[len(lines)-1])
	if !IsShortImageID(id) {
		c.T.Fatalf("fetch: last line %q is not a short image ID (sha512- and 32 hex digits): %v", id, r)
	}
	var found []string
	for _, im := range c.Images() {
		if strings.HasPrefix(im.ID, id) {
			found = append(found, im.ID)
		}
	}
	if len(found) != 1 {
		c.T.Fatalf("fetch printed %s: image list has %d images with that prefix", id, len(found))
	}
	return found[0]
}

// IsShortImageID reports whether s is rkt's short image ID, what fetch
// prints without --full.
func IsShortImageID(s string) bool {
	return len(s) == len("sha512-")+32 && IsImageID(s+strings.Repeat("0", 96))
}

// IsImageID reports whether s is a full appc image ID.
func IsImageID(s string) bool {
	if !strings.HasPrefix(s, "sha512-") || len(s) != len("sha512-")+128 {
		return false
	}
	for _, ch := range s[len("sha512-"):] {
		if !strings.ContainsRune("0123456789abcdef", ch) {
			return false
		}
	}
	return true
}

// stage1Args are the run/prepare flags selecting the stage1 under test.
func (c *Ctx) stage1Args() []string {
	return []string{"--stage1-path=" + c.A.Stage1.ACI}
}

// Run runs `rkt run` with the stage1 under test; args are pod flags,
// images and app flags as on rkt's command line.
func (c *Ctx) Run(args ...string) Result {
	c.T.Helper()
	return c.RunWith(Opts{}, args...)
}

// RunWith is Run with options.
func (c *Ctx) RunWith(o Opts, args ...string) Result {
	c.T.Helper()
	return c.RktWith(o, append(append([]string{Insecure, "run"}, c.stage1Args()...), args...)...)
}

// StartRun starts `rkt run` in the background.
func (c *Ctx) StartRun(args ...string) *Proc {
	c.T.Helper()
	return c.Start(append(append([]string{Insecure, "run"}, c.stage1Args()...), args...)...)
}

// Prepare runs `rkt prepare` with the stage1 under test.
func (c *Ctx) Prepare(args ...string) Result {
	c.T.Helper()
	return c.Rkt(append(append([]string{Insecure, "prepare"}, c.stage1Args()...), args...)...)
}

// MustPrepare prepares a pod and returns its UUID, checking that stdout is
// the UUID alone (Nomad relies on it).
func (c *Ctx) MustPrepare(args ...string) string {
	c.T.Helper()
	r := c.ExpectOK(c.Prepare(args...))
	uuid := strings.TrimSpace(r.Stdout)
	if !IsUUID(uuid) {
		c.T.Fatalf("prepare: stdout is not a UUID alone: %v", r)
	}
	return uuid
}

// IsUUID reports whether s is a canonical lower-case UUID.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, ch := range s {
		switch i {
		case 8, 13, 18, 23:
			if ch != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", ch) {
				return false
			}
		}
	}
	return true
}

// Pod is one pod of `rkt status|list --format=json`.
type Pod struct {
	Name            string            `json:"name"`
	State           string            `json:"state"`
	Networks        []json.RawMessage `json:"networks"`
	AppNames        []string          `json:"app_names"`
	Apps            []PodApp          `json:"apps"`
	CreatedAt       *int64            `json:"created_at"`
	StartedAt       *int64            `json:"started_at"`
	UserAnnotations map[string]string `json:"user_annotations"`
	UserLabels      map[string]string `json:"user_labels"`
}

// PodApp is one app of a Pod.
type PodApp struct {
	Name       string     `json:"name"`
	State      string     `json:"state"`
	CreatedAt  *int64     `json:"created_at"`
	StartedAt  *int64     `json:"started_at"`
	FinishedAt *int64     `json:"finished_at"`
	ExitCode   *int       `json:"exit_code"`
	ImageID    string     `json:"image_id"`
	Mounts     []PodMount `json:"mounts"`
}

// PodMount is one mount of a PodApp.
type PodMount struct {
	Name          string `json:"name"`
	ContainerPath string `json:"container_path"`
	HostPath      string `json:"host_path"`
	ReadOnly      bool   `json:"read_only"`
}

// Status returns `rkt status --format=json UUID`, failing the test on error
// or on anything but one JSON line.
func (c *Ctx) Status(uuid string, extra ...string) Pod {
	c.T.Helper()
	r := c.ExpectOK(c.Rkt(append([]string{"status", "--format=json"}, append(extra, uuid)...)...))
	var p Pod
	c.decodeOneLine(r, &p)
	return p
}

// List returns `rkt list --format=json`.
func (c *Ctx) List() []Pod {
	c.T.Helper()
	r := c.ExpectOK(c.Rkt("list", "--format=json"))
	var ps []Pod
	c.decodeOneLine(r, &ps)
	return ps
}

// FindPod returns the pod with uuid in List, or nil.
func (c *Ctx) FindPod(uuid string) *Pod {
	c.T.Helper()
	for _, p := range c.List() {
		if p.Name == uuid {
			return &p
		}
	}
	return nil
}

// ImageEntry is one image of `rkt image list --format=json`.
type ImageEntry struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	ImportTime   int64  `json:"import_time"`
	LastUsedTime int64  `json:"last_used_time"`
	Size         int64  `json:"size"`
}

// Images returns `rkt image list --format=json`.
func (c *Ctx) Images() []ImageEntry {
	c.T.Helper()
	r := c.ExpectOK(c.Rkt("image", "list", "--format=json"))
	var is []ImageEntry
	c.decodeOneLine(r, &is)
	return is
}

// ImageByID returns the listed image with id, or nil.
func (c *Ctx) ImageByID(id string) *ImageEntry {
	c.T.Helper()
	for _, im := range c.Images() {
		if im.ID == id {
			return &im
		}
	}
	return nil
}

// decodeOneLine checks the machine-readable contract clients rely on (one
// line of JSON, nothing on stderr) and decodes it.
func (c *Ctx) decodeOneLine(r Result, v any) {
	c.T.Helper()
	out := strings.TrimRight(r.Stdout, "\n")
	if strings.Contains(out, "\n") {
		c.T.Errorf("JSON output is not one line: %v", r)
	}
	if r.Stderr != "" {
		c.T.Errorf("JSON output came with stderr: %v", r)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(out)))
	if err := dec.Decode(v); err != nil {
		c.T.Fatalf("decoding JSON: %v: %v", err, r)
	}
}

// WaitState polls `rkt status` until the pod reaches state.
func (c *Ctx) WaitState(uuid, state string, timeout time.Duration) Pod {
	c.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := c.Rkt("status", "--format=json", uuid)
		var p Pod
		if r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &p) == nil && p.State == state {
			return p
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("pod %s did not reach state %q within %v; last: %v", uuid, state, timeout, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PodDirs lists the pod directories under pods/<state> of the test's --dir.
func (c *Ctx) PodDirs(state string) []string {
	ents, _ := os.ReadDir(filepath.Join(c.Dir, "pods", state))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// PodDir finds the directory of pod uuid in any state, or "".
func (c *Ctx) PodDir(uuid string) string {
	for _, s := range []string{"embryo", "prepare", "prepared", "run", "exited-garbage", "garbage"} {
		p := filepath.Join(c.Dir, "pods", s, uuid)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
