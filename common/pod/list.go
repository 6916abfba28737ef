package pod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
)

// Load opens the pod named by a full UUID or by a unique prefix of one (as
// `rkt status 66ceb509`), in whatever state it is. Dashes are optional in
// both. It fails with ErrNotFound when nothing matches and with ErrAmbiguous,
// naming the candidates, when several pods do. The pod is returned unlocked;
// its State is worked out as in the package comment.
func Load(dataDir, uuidOrPrefix string) (*Pod, error) {
	want := normalize(uuidOrPrefix)
	if want == "" {
		return nil, fmt.Errorf("pod %q: empty UUID: %w", uuidOrPrefix, ErrNotFound)
	}
	if len(want) == 32 {
		if u, err := types.NewUUID(want); err == nil {
			return lookup(dataDir, *u)
		}
	}
	names, err := allNames(dataDir)
	if err != nil {
		return nil, err
	}
	var matches []string
	for _, n := range names {
		if strings.HasPrefix(normalize(n), want) {
			matches = append(matches, n)
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("pod %q: %w", uuidOrPrefix, ErrNotFound)
	case 1:
		u, err := types.NewUUID(matches[0])
		if err != nil {
			return nil, fmt.Errorf("pod %q: %w", matches[0], err)
		}
		return lookup(dataDir, *u)
	}
	return nil, fmt.Errorf("pod UUID prefix %q matches %s: %w", uuidOrPrefix, strings.Join(matches, ", "), ErrAmbiguous)
}

func normalize(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
}

// allNames lists the UUIDs present in any state directory, once each,
// sorted. Entries that are not UUID-named directories are skipped.
func allNames(dataDir string) ([]string, error) {
	found, err := scan(dataDir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.name
	}
	return names, nil
}

// found is a pod directory seen by scan: its name and the state directory
// it was first seen in.
type found struct {
	name, dir string
}

// scan reads the state directories once each (no per-pod work) and returns
// the UUID-named directories, sorted, once each: a pod seen in two state
// directories because it moved during the scan keeps the earlier one, where
// lookup starts looking.
func scan(dataDir string) ([]found, error) {
	seen := map[string]bool{}
	var out []found
	for _, d := range stateDirs {
		entries, err := os.ReadDir(filepath.Join(PodsDir(dataDir), d))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing pods: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() || seen[e.Name()] {
				continue
			}
			u, err := types.NewUUID(e.Name())
			if err != nil || u.String() != e.Name() {
				continue
			}
			seen[e.Name()] = true
			out = append(out, found{e.Name(), d})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// List opens every pod, sorted by UUID, keeping those in one of states (all
// when none is given). A pod that moves between state directories during
// the walk is listed once, in the state it had when it was opened; one that
// disappears (gc) is left out. The caller closes each pod.
//
// The pods are opened in parallel, each first in the state directory the
// scan saw it in, so that a pod costs an open, a lock probe and a stat.
func List(dataDir string, states ...State) ([]*Pod, error) {
	names, err := scan(dataDir)
	if err != nil {
		return nil, err
	}
	// The state directories are opened once: each pod is then opened and
	// checked by its name in them, not by walking its whole path twice.
	dirFDs := map[string]int{}
	for _, d := range stateDirs {
		if fd, err := openDir(filepath.Join(PodsDir(dataDir), d)); err == nil {
			dirFDs[d] = fd
		}
	}
	defer func() {
		for _, fd := range dirFDs {
			unix.Close(fd)
		}
	}()
	pods := make([]*Pod, len(names))
	errs := make([]error, len(names))
	Parallel(len(names), func(i int) {
		u, err := types.NewUUID(names[i].name)
		if err != nil {
			return
		}
		p, err := lookupFrom(dataDir, *u, names[i].dir, dirFDs)
		if errors.Is(err, ErrNotFound) {
			return
		}
		if err != nil {
			errs[i] = err
			return
		}
		if len(states) > 0 && !hasState(states, p.state) {
			p.Close()
			return
		}
		pods[i] = p
	})
	out := pods[:0]
	var first error
	for i, p := range pods {
		if first == nil && errs[i] != nil {
			first = errs[i]
		}
		if p != nil {
			out = append(out, p)
		}
	}
	if first != nil {
		for _, p := range out {
			p.Close()
		}
		return nil, first
	}
	return out, nil
}

// Parallel calls f(0) ... f(n-1) from as many goroutines as there are CPUs
// (at least two: the work is mostly system calls) and returns when all
// have returned. Per-pod work in list and gc goes through it.
func Parallel(n int, f func(i int)) {
	ParallelN(n, runtime.GOMAXPROCS(0), f)
}

// ParallelN is Parallel with a number of workers: more than the CPUs for
// work that mostly waits (gc waiting on each pod's stage1 gc process).
func ParallelN(n, workers int, f func(i int)) {
	if workers < 2 {
		workers = 2
	}
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

func hasState(states []State, s State) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}
