package store

import (
	"bytes"
	"crypto/sha512"
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

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/aci/acibuild"
)

// Child processes: the test binary re-executed with RKT_STORE_CHILD set.
const childEnv = "RKT_STORE_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "worker":
		os.Exit(childWorker())
	case "slow-import":
		os.Exit(childSlowImport())
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode")
		os.Exit(2)
	}
}

// workerImage is image i of the concurrency tests: images 0-2 are shared
// by every worker, the others belong to one worker.
func workerImage(i int) []byte {
	m, _ := acibuild.Manifest(fmt.Sprintf("example.com/w%d", i), map[string]string{"version": "1"})
	files := []acibuild.File{{Path: "data", Mode: 0o644, Data: bytes.Repeat([]byte(strconv.Itoa(i)), 20000)}}
	for j := range 20 {
		files = append(files, acibuild.File{Path: fmt.Sprintf("d%d/f%d", j%4, j), Mode: 0o644, Data: []byte(strconv.Itoa(j))})
	}
	var buf bytes.Buffer
	acibuild.Build(&buf, m, files, acibuild.WithGzip())
	return buf.Bytes()
}

// workerLoop imports, lists, renders and removes, as a busy rkt would.
func workerLoop(s *Store, worker, iterations int) error {
	for it := range iterations {
		shared := it % 3
		own := 100 + worker*1000 + it
		for _, i := range []int{shared, own} {
			info, err := s.Import(bytes.NewReader(workerImage(i)), ImportOptions{})
			if err != nil {
				return fmt.Errorf("worker %d: import %d: %w", worker, i, err)
			}
			treeID, err := s.RenderTree(info.ID)
			// A shared image may be removed by another worker meanwhile.
			if err != nil && !(i == shared && errors.Is(err, ErrNotFound)) {
				return fmt.Errorf("worker %d: render %d: %w", worker, i, err)
			}
			if err == nil && i == own {
				data, err := os.ReadFile(filepath.Join(s.TreeRootfs(treeID), "data"))
				if err != nil || !bytes.HasPrefix(data, []byte(strconv.Itoa(i))) {
					return fmt.Errorf("worker %d: tree of %d: %q %v", worker, i, data[:min(len(data), 10)], err)
				}
			}
			if err := s.MarkUsed(time.Now(), info.ID); err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("worker %d: mark used: %w", worker, err)
			}
		}
		if _, err := s.List(); err != nil {
			return fmt.Errorf("worker %d: list: %w", worker, err)
		}
		if _, err := s.GetACI("example.com/w0", nil); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("worker %d: GetACI: %w", worker, err)
		}
		// Remove every other own image, and now and then a shared one.
		if it%2 == 1 {
			id, err := s.GetACI(typesName(own), nil)
			if err != nil {
				return fmt.Errorf("worker %d: find own %d: %w", worker, own, err)
			}
			if err := s.Remove(id); err != nil {
				return fmt.Errorf("worker %d: remove %d: %w", worker, own, err)
			}
		}
		if it%4 == 3 {
			if id, err := s.GetACI(typesName(shared), nil); err == nil {
				if err := s.Remove(id); err != nil && !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("worker %d: remove shared: %w", worker, err)
				}
			}
		}
		if err := s.GC(0); err != nil {
			return fmt.Errorf("worker %d: gc: %w", worker, err)
		}
	}
	return nil
}

func typesName(i int) types.ACIdentifier {
	return types.ACIdentifier(fmt.Sprintf("example.com/w%d", i))
}

func childWorker() int {
	s, err := Open(os.Getenv("RKT_STORE_DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	worker, _ := strconv.Atoi(os.Getenv("RKT_STORE_WORKER"))
	if err := workerLoop(s, worker, 8); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// checkConsistent: every listed image has its blob, hashing to its ID;
// every tree is complete; no debris is left.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range list {
		rs, err := s.ReadStream(info.ID)
		if err != nil {
			t.Errorf("listed image %s has no blob: %v", info.ID, err)
			continue
		}
		h := sha512.New()
		n, _ := io.Copy(h, rs)
		rs.Close()
		if s.HashToKey(h) != info.ID || n != info.Size {
			t.Errorf("blob of %s is damaged", info.ID)
		}
		if _, err := s.GetImageManifest(info.ID); err != nil {
			t.Errorf("manifest of %s: %v", info.ID, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir(), "tree"))
	for _, e := range entries {
		if !s.HasTree(e.Name()) {
			t.Errorf("incomplete tree listed: %s", e.Name())
		}
	}
	assertTmpEmpty(t, s)
}

func TestConcurrentGoroutines(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- workerLoop(s, w, 8)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	checkConsistent(t, s)
}

func TestConcurrentProcesses(t *testing.T) {
	s := newStore(t)
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for w := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=worker", "RKT_STORE_DIR="+s.Dir(), "RKT_STORE_WORKER="+strconv.Itoa(w))
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	// This process works on the store at the same time.
	if err := workerLoop(s, 3, 4); err != nil {
		t.Error(err)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("worker process %d: %v\n%s", i, err, outs[i])
		}
	}
	checkConsistent(t, s)
}

// childSlowImport imports what comes on stdin; the parent kills it midway.
func childSlowImport() int {
	s, err := Open(os.Getenv("RKT_STORE_DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := s.Import(os.Stdin, ImportOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// A process killed (SIGKILL) in the middle of an import leaves nothing
// listed and only debris in tmp/, which GC removes.
func TestKilledImport(t *testing.T) {
	s := newStore(t)
	var img bytes.Buffer
	if err := writeSyntheticImage(&img, 400, 8<<20); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=slow-import", "RKT_STORE_DIR="+s.Dir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Feed most of the image, then wait for the files to show in tmp/.
	if _, err := stdin.Write(img.Bytes()[:img.Len()*3/4]); err != nil {
		t.Fatalf("feeding the child: %v\n%s", err, out.String())
	}
	deadline := time.Now().Add(20 * time.Second)
	for countFiles(filepath.Join(s.Dir(), "tmp")) < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("the child did not start extracting\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	stdin.Close()

	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("a killed import is listed: %+v", list)
	}
	if trees, _ := s.ListTrees(); len(trees) != 0 {
		t.Errorf("a killed import left trees: %v", trees)
	}
	assertNoBlobs(t, s)
	// Young debris survives a GC with a grace period, not GC(0).
	if err := s.GC(time.Hour); err != nil {
		t.Fatal(err)
	}
	if countFiles(filepath.Join(s.Dir(), "tmp")) == 0 {
		t.Errorf("GC(1h) removed debris a second old")
	}
	if err := s.GC(0); err != nil {
		t.Fatal(err)
	}
	assertTmpEmpty(t, s)
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// Debris as a crash leaves it: never listed; GC removes it once old
// enough, but never what a live operation holds.
func TestGCDebrisAndLiveWork(t *testing.T) {
	s := newStore(t)
	tmp := filepath.Join(s.Dir(), "tmp")
	dead := filepath.Join(tmp, "import-dead")
	os.MkdirAll(filepath.Join(dead, "tree", "rootfs", "etc"), 0o755)
	os.WriteFile(filepath.Join(dead, "blob"), []byte("half a tar"), 0o644)
	os.WriteFile(filepath.Join(dead, "tree", "manifest"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(tmp, "stray-file"), []byte("x"), 0o644)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(dead, old, old)
	os.Chtimes(filepath.Join(tmp, "stray-file"), old, old)
	young := filepath.Join(tmp, "render-young")
	os.Mkdir(young, 0o755)

	// An orphan blob: an import killed between storing it and indexing.
	orphan := testImage{name: "example.com/orphan"}.build(t)
	orphanPath := s.blobPath(idOf(orphan))
	os.MkdirAll(filepath.Dir(orphanPath), 0o755)
	os.WriteFile(orphanPath, orphan, 0o644)
	os.Chtimes(orphanPath, old, old)

	live, err := s.newWork("import")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(live.path("blob"), []byte("in flight"), 0o644)
	os.Chtimes(live.dir, old, old)

	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("debris listed: %+v", list)
	}
	if trees, _ := s.ListTrees(); len(trees) != 0 {
		t.Errorf("debris listed as trees: %v", trees)
	}
	if _, err := s.Info(idOf(orphan)); !errors.Is(err, ErrNotFound) {
		t.Errorf("orphan blob visible: %v", err)
	}
	if err := s.GC(time.Hour); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{dead: false, filepath.Join(tmp, "stray-file"): false, young: true, live.dir: true, orphanPath: false} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("after GC(1h) %s exists=%v, want %v", p, err == nil, want)
		}
	}
	if err := s.GC(0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live.dir); err != nil {
		t.Errorf("GC removed a live operation's directory")
	}
	live.release()
	assertTmpEmpty(t, s)

	// A new import also clears debris older than an hour.
	os.Mkdir(dead, 0o755)
	os.Chtimes(dead, old, old)
	importImage(t, s, testImage{name: "example.com/after"})
	assertTmpEmpty(t, s)
}

func TestNewWorkIsLocked(t *testing.T) {
	s := newStore(t)
	w, err := s.newWork("x")
	if err != nil {
		t.Fatal(err)
	}
	defer w.release()
	f, err := os.Open(w.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("work dir not locked: %v", err)
	}
	if !strings.HasPrefix(filepath.Base(w.dir), "x-") {
		t.Errorf("work dir %s", w.dir)
	}
}
