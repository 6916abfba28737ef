package pod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/appc/spec/schema/types"
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
	seen := map[string]bool{}
	for _, d := range stateDirs {
		entries, err := os.ReadDir(filepath.Join(PodsDir(dataDir), d))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing pods: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			u, err := types.NewUUID(e.Name())
			if err != nil || u.String() != e.Name() {
				continue
			}
			seen[e.Name()] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// List opens every pod, sorted by UUID, keeping those in one of states (all
// when none is given). A pod that moves between state directories during
// the walk is listed once, in the state it had when it was opened; one that
// disappears (gc) is left out. The caller closes each pod.
func List(dataDir string, states ...State) ([]*Pod, error) {
	names, err := allNames(dataDir)
	if err != nil {
		return nil, err
	}
	var out []*Pod
	for _, n := range names {
		u, err := types.NewUUID(n)
		if err != nil {
			continue
		}
		p, err := lookup(dataDir, *u)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			for _, q := range out {
				q.Close()
			}
			return nil, err
		}
		if len(states) > 0 && !hasState(states, p.state) {
			p.Close()
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

func hasState(states []State, s State) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}
