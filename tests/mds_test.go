package tests

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/stage0/mds"
	"github.com/rktng/rkt/tests/testutil"
)

// mdsSocketEnv points rkt (service and clients) at a registration socket
// of the test's own, off /run/rkt.
const mdsSocketEnv = "RKT_METADATA_SOCKET"

// metadataService is a `rkt metadata-service` the test started.
type metadataService struct {
	proc   *testutil.Proc
	port   int
	socket string
	env    []string
}

// startMetadataService runs `rkt metadata-service` on a free port and a
// scratch socket and waits until it takes registrations.
func startMetadataService(c *testutil.Ctx) *metadataService {
	c.T.Helper()
	m := &metadataService{port: freePort(c.T), socket: c.Path("mds.sock")}
	m.env = []string{mdsSocketEnv + "=" + m.socket}
	m.proc = c.StartWith(testutil.Opts{Env: m.env}, "metadata-service", "--listen-port="+strconv.Itoa(m.port))
	waitDial(c.T, "unix", m.socket, m.proc.Exited)
	waitDial(c.T, "tcp", m.addr(), m.proc.Exited)
	return m
}

func (m *metadataService) addr() string { return "127.0.0.1:" + strconv.Itoa(m.port) }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitDial waits up to 20 s for something to answer on addr, failing early
// when gone reports that the process meant to answer has ended.
func waitDial(t *testing.T, network, addr string, gone func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial(network, addr)
		if err == nil {
			c.Close()
			return
		}
		if gone() || time.Now().After(deadline) {
			t.Fatalf("metadata service never answered on %s %s: %v", network, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mdsGet asks the service at addr for path on behalf of token.
func mdsGet(t *testing.T, addr, token, path string, flavor bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/"+token+mds.PathPrefix+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if flavor {
		req.Header.Set(mds.FlavorHeader, mds.FlavorValue)
	}
	return mdsDo(t, req)
}

func mdsDo(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitOutput waits up to 30 s for p's stdout to contain want.
func waitOutput(t *testing.T, p *testutil.Proc, want string) string {
	t.Helper()
	deadline := time.Now().Add(testutil.Scale(30 * time.Second))
	for {
		out := p.Stdout()
		if strings.Contains(out, want) {
			return out
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("waiting for %q on the pod's stdout: %v", want, p.Wait(time.Second))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetadataService runs `rkt metadata-service` and a pod registered
// with it by `run --mds-register`: the app's AC_METADATA_URL carries the
// pod's token, the service answers the pod's UUID and image ID for it, and
// gc makes the token worthless.
func TestMetadataService(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	m := startMetadataService(c)

	fi, err := os.Stat(m.socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("registration socket %s: %v (%v): want mode 0600, root only", m.socket, fi, err)
	}
	if code, _ := mdsGet(t, m.addr(), "no-such-token", "/pod/uuid", true); code != http.StatusUnauthorized {
		t.Errorf("unknown token: status %d, want 401", code)
	}

	img := c.A.InspectImage("example.com/mds-probe",
		"--print-env=AC_METADATA_URL,AC_APP_NAME", "--print-msg=mds-ready", "--wait-file=/mds-done")
	aci := c.WriteImage(img)
	b, err := img.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	wantID := imageID(b)
	uuidFile := c.Path("uuid")
	p := c.StartWith(testutil.Opts{Env: m.env}, testutil.Insecure, "run", "--stage1-path="+c.Stage1().ACI,
		"--mds-register", "--uuid-file-save="+uuidFile, aci)
	out := waitOutput(t, p, "mds-ready")
	env := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	uuid := strings.TrimSpace(string(readFile(t, uuidFile)))
	appName := env["AC_APP_NAME"]
	mu, err := url.Parse(env["AC_METADATA_URL"])
	if err != nil || mu.Scheme != "http" || mu.Host == "" || strings.Count(mu.Path, "/") != 1 || len(mu.Path) < 2 {
		t.Fatalf("AC_METADATA_URL=%q: want http://HOST:PORT/<token> (%v)\n%s", env["AC_METADATA_URL"], err, out)
	}
	token := mu.Path[1:]
	// The stage1 points apps at the service's address (rkt's port 18112
	// unless it learns another); the test's service is on its own port,
	// so ask it directly with the app's token.
	t.Logf("app's AC_METADATA_URL host: %s; service at %s", mu.Host, m.addr())

	code, body := mdsGet(t, m.addr(), token, "/pod/uuid", true)
	if code != 200 || body != uuid {
		t.Errorf("pod/uuid: %d %q, want 200 %q", code, body, uuid)
	}
	code, body = mdsGet(t, m.addr(), token, "/apps/"+appName+"/image/id", true)
	if code != 200 || body != wantID {
		t.Errorf("apps/%s/image/id: %d %q, want 200 %q", appName, code, body, wantID)
	}
	code, body = mdsGet(t, m.addr(), token, "/apps/"+appName+"/image/manifest", true)
	var im schema.ImageManifest
	if err := im.UnmarshalJSON([]byte(body)); code != 200 || err != nil || im.Name != "example.com/mds-probe" {
		t.Errorf("apps/%s/image/manifest: %d %v %q", appName, code, err, body)
	}
	if code, _ := mdsGet(t, m.addr(), token, "/pod/uuid", false); code != http.StatusForbidden {
		t.Errorf("request without Metadata-Flavor: status %d, want 403", code)
	}

	// Sign as the pod, verify.
	req, _ := http.NewRequest("POST", "http://"+m.addr()+"/"+token+mds.PathPrefix+"/pod/hmac/sign",
		strings.NewReader(url.Values{"content": {"hello"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(mds.FlavorHeader, mds.FlavorValue)
	code, sig := mdsDo(t, req)
	if code != 200 {
		t.Fatalf("sign: %d %q", code, sig)
	}
	for content, want := range map[string]int{"hello": 200, "hellO": 403} {
		form := url.Values{"content": {content}, "uuid": {uuid}, "signature": {sig}}
		req, _ := http.NewRequest("POST", "http://"+m.addr()+"/"+token+mds.PathPrefix+"/pod/hmac/verify", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(mds.FlavorHeader, mds.FlavorValue)
		if code, body := mdsDo(t, req); code != want {
			t.Errorf("verify %q: %d %q, want %d", content, code, body, want)
		}
	}

	// Let the app end, then gc: the pod's token must stop working.
	done := filepath.Join(c.Dir, "pods", "run", uuid, "stage1", "rootfs", "opt", "stage2", appName, "rootfs", "mds-done")
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.ExpectOK(p.Wait(testutil.DefaultTimeout))
	c.ExpectOK(c.RktWith(testutil.Opts{Env: m.env}, "gc", "--grace-period=0s"))
	if code, _ := mdsGet(t, m.addr(), token, "/pod/uuid", true); code != http.StatusUnauthorized {
		t.Errorf("token after gc: status %d, want 401", code)
	}

	// SIGTERM ends the service cleanly and removes its socket.
	m.proc.Signal(syscall.SIGTERM)
	c.ExpectOK(m.proc.Wait(10 * time.Second))
	if _, err := os.Lstat(m.socket); !os.IsNotExist(err) {
		t.Errorf("socket left after the service exited: %v", err)
	}
}

// TestMetadataServiceErrors: registering without a service fails the run
// before the pod starts, and two services cannot share a socket.
func TestMetadataServiceErrors(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	env := []string{mdsSocketEnv + "=" + c.Path("absent.sock")}
	r := c.RktWith(testutil.Opts{Env: env}, testutil.Insecure, "run", "--stage1-path="+c.Stage1().ACI,
		"--mds-register", c.InspectACI("--print-msg=should not run"))
	c.ExpectFailure(r, "metadata service is not running")
	if strings.Contains(r.Stdout, "should not run") {
		t.Error("the pod ran although its registration failed")
	}

	m := startMetadataService(c)
	r = c.RktWith(testutil.Opts{Env: m.env}, "metadata-service", "--listen-port="+strconv.Itoa(freePort(t)))
	c.ExpectFailure(r, "another metadata service", m.socket)
	r = c.RktWith(testutil.Opts{Env: []string{mdsSocketEnv + "=" + c.Path("other.sock")}}, "metadata-service", "--listen-port="+strconv.Itoa(m.port))
	c.ExpectFailure(r, "listening for apps", ":"+strconv.Itoa(m.port))
	c.ExpectFailure(c.Rkt("metadata-service", "--listen-port=0"), "--listen-port")
}

// TestMetadataServiceSocketActivation starts the service the way
// rkt-metadata.socket does, through systemd-socket-activate: it must take
// registrations on the socket it is passed and leave that socket alone on
// exit (systemd owns it).
func TestMetadataServiceSocketActivation(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	activate := c.RequireTool("systemd-socket-activate")
	sock := c.Path("activated.sock")
	port := freePort(t)
	// systemd-socket-activate starts the service on the first connection,
	// with only the environment it is told to pass.
	cmd := exec.Command(activate, "-l", sock, "-E", mdsSocketEnv+"="+c.Path("unused.sock"),
		c.A.Rkt, "--dir="+c.Dir, "metadata-service", "--listen-port="+strconv.Itoa(port))
	logf, err := os.Create(c.Path("activated.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	gone := func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
			return false
		}
	}
	waitDial(t, "unix", sock, gone)

	const uuid = "4b8e9d0e-0c1f-4a3b-8c5d-6a3b4d3c8a6e"
	token, err := mds.Register(sock, minimalRegistration(t, uuid))
	if err != nil {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("registering through the activated socket: %v\n%s", err, log)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	waitDial(t, "tcp", addr, gone)
	if code, body := mdsGet(t, addr, token, "/pod/uuid", true); code != 200 || body != uuid {
		t.Errorf("pod/uuid: %d %q", code, body)
	}
	if _, err := os.Stat(c.Path("unused.sock")); !os.IsNotExist(err) {
		t.Errorf("the service made its own socket although one was passed: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("service after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("service did not exit on SIGTERM")
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Errorf("the service removed the socket systemd passed it: %v", err)
	}
}

// minimalRegistration is a one-app pod, as rkt would register it.
func minimalRegistration(t *testing.T, uuid string) mds.Registration {
	t.Helper()
	id, err := types.NewHash("sha512-" + strings.Repeat("0", 128))
	if err != nil {
		t.Fatal(err)
	}
	pm := schema.BlankPodManifest()
	pm.Apps = schema.AppList{{Name: "app", Image: schema.RuntimeImage{ID: *id}}}
	im := schema.BlankImageManifest()
	im.Name = "example.com/app"
	return mds.Registration{UUID: uuid, Manifest: pm, Apps: []mds.AppImage{{Name: "app", Manifest: im}}}
}
