package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/store"
	"github.com/rktng/rkt/aci/trust"
)

// The real store has what fetching needs.
var _ Store = (*store.Store)(nil)

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRealStore(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	aci := testImage(t, "example.com/app", map[string]string{"version": "1.0", "os": "linux", "arch": "amd64"}, true)
	s.discovery("example.com/app")
	s.publish("example.com/app", "1.0", aci, sg.sign(t, aci))
	bad := append([]byte{}, aci...)
	bad[len(bad)/2] ^= 1
	s.put("/tampered.aci", bad)
	s.put("/tampered.aci.asc", sg.sign(t, aci))

	st := openStore(t, filepath.Join(t.TempDir(), "cas"))
	f, _ := newFetcher(t, s, st, sg.ks)
	if _, err := f.FetchImage(context.Background(), "https://example.com/tampered.aci", ""); !errors.Is(err, trust.ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	if l, _ := st.List(); len(l) != 0 {
		t.Fatalf("store lists %v after a refused image", l)
	}
	id, err := f.FetchImage(context.Background(), "example.com/app:1.0", "")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(id)
	if err != nil || info.Name != "example.com/app" {
		t.Fatalf("info %+v %v", info, err)
	}
	if rem, err := st.GetRemote("https://example.com/images/example.com/app-1.0-linux-amd64.aci"); err != nil || rem.BlobKey != id || rem.ETag == "" {
		t.Errorf("remote %+v %v", rem, err)
	}
}

// TestKilledFetch kills (SIGKILL) a fetching process half-way through the
// download: the store lists nothing, and the next fetch resumes where the
// killed one stopped.
func TestKilledFetch(t *testing.T) {
	if os.Getenv("RKT_FETCH_CHILD") != "" {
		t.Skip("runs as the parent only")
	}
	s := newSite(t)
	sg := newSigner(t, "example.com")
	aci := testImageSized(t, 8<<20)
	s.put("/big.aci.asc", sg.sign(t, aci))
	half := make(chan struct{}, 1)
	var ranges []string
	s.Mux.HandleFunc("/big.aci", func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		if len(ranges) == 1 {
			w.Header().Set("ETag", `"big"`)
			w.Header().Set("Content-Length", fmt.Sprint(len(aci)))
			w.Write(aci[:len(aci)/2])
			w.(http.Flusher).Flush()
			half <- struct{}{}
			<-r.Context().Done()
			return
		}
		w.Header().Set("ETag", `"big"`)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(aci)))
	})
	root := t.TempDir()
	casDir, dlDir := filepath.Join(root, "cas"), filepath.Join(root, "downloads")
	url := s.TLS.URL + "/big.aci"

	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledFetchChild$", "-test.v")
	cmd.Env = append(os.Environ(),
		"RKT_FETCH_CHILD=1", "SSL_CERT_FILE="+s.WriteCAFile(t),
		"CHILD_URL="+url, "CHILD_CAS="+casDir, "CHILD_DL="+dlDir, "CHILD_KEYS="+sg.dir)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-half:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("child never got half-way:\n%s", out)
	}
	time.Sleep(200 * time.Millisecond) // let the child write what it received
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	st := openStore(t, casDir)
	if l, _ := st.List(); len(l) != 0 {
		t.Fatalf("store lists %v after the kill", l)
	}
	f, _ := newFetcher(t, s, st, sg.ks, func(o *Options) { o.DownloadDir = dlDir; o.DialContext = nil })
	id, err := f.FetchImage(context.Background(), url, "")
	if err != nil {
		t.Fatalf("%v\nchild:\n%s", err, out)
	}
	if id != imageID(t, aci) {
		t.Error("image differs")
	}
	if len(ranges) != 2 || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
		t.Errorf("second fetch did not resume: ranges %q", ranges)
	}
}

// TestKilledFetchChild is the process TestKilledFetch kills.
func TestKilledFetchChild(t *testing.T) {
	if os.Getenv("RKT_FETCH_CHILD") == "" {
		t.Skip("run by TestKilledFetch")
	}
	st, err := store.Open(os.Getenv("CHILD_CAS"))
	if err != nil {
		t.Fatal(err)
	}
	// Roots come from SSL_CERT_FILE, as for rkt.
	f, err := New(Options{Store: st, Keystore: trust.New("", os.Getenv("CHILD_KEYS")), DownloadDir: os.Getenv("CHILD_DL"), Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.FetchImage(context.Background(), os.Getenv("CHILD_URL"), "")
	t.Fatalf("the child should have been killed, fetch returned %v", err)
}

// TestFailedDependency: a fetch whose dependency cannot be had leaves the
// store as it was, the top image and the dependencies fetched before the
// failure included, but does not take back an image that was there before.
func TestFailedDependency(t *testing.T) {
	s := newSite(t)
	sg := newSigner(t, "example.com")
	labels := func(v string) map[string]string {
		return map[string]string{"version": v, "os": "linux", "arch": "amd64"}
	}
	dep := func(name, v string) types.Dependency {
		return types.Dependency{ImageName: types.ACIdentifier(name), Labels: types.Labels{{Name: "version", Value: v}}}
	}
	lib := testImage(t, "example.com/lib", labels("2"), true)
	app := testImage(t, "example.com/app", labels("3"), true, func(m *schema.ImageManifest) {
		m.Dependencies = types.Dependencies{dep("example.com/lib", "2"), dep("example.com/missing", "1")}
	})
	for _, n := range []string{"app", "lib", "missing"} {
		s.discovery("example.com/" + n)
	}
	s.publish("example.com/lib", "2", lib, sg.sign(t, lib))
	s.put("/app.aci", app)
	s.put("/app.aci.asc", sg.sign(t, app))
	appPath := filepath.Join(t.TempDir(), "app.aci")
	os.WriteFile(appPath, app, 0o644)
	os.WriteFile(appPath+".asc", sg.sign(t, app), 0o644)

	for _, ref := range []string{appPath, "https://example.com/app.aci"} {
		st := openStore(t, filepath.Join(t.TempDir(), "cas"))
		f, _ := newFetcher(t, s, st, sg.ks)
		_, err := f.FetchImage(context.Background(), ref, "")
		if err == nil || !strings.Contains(err.Error(), "example.com/missing") {
			t.Fatalf("%s: %v, want an error naming the missing dependency", ref, err)
		}
		if l, _ := st.List(); len(l) != 0 {
			t.Errorf("%s: the store lists %d images after the failed fetch: %+v", ref, len(l), l)
		}
		if rem, err := st.GetRemote("https://example.com/app.aci"); err == nil {
			t.Errorf("%s: a remote record survived: %+v", ref, rem)
		}

		// An image stored before the failed fetch stays.
		libID, err := f.FetchImage(context.Background(), "example.com/lib:2", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.FetchImage(context.Background(), ref, ""); err == nil {
			t.Fatalf("%s: second fetch succeeded", ref)
		}
		if l, _ := st.List(); len(l) != 1 || l[0].ID != libID {
			t.Errorf("%s: after the second failed fetch the store lists %+v, want only %s", ref, l, libID)
		}
	}
}
