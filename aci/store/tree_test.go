package store

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/aci/acibuild"
)

func dependsOn(deps ...types.Dependency) func(*schema.ImageManifest) {
	return func(m *schema.ImageManifest) { m.Dependencies = append(m.Dependencies, deps...) }
}

func dep(name string, kv ...string) types.Dependency {
	return types.Dependency{ImageName: types.ACIdentifier(name), Labels: labels(kv...)}
}

func readTree(t *testing.T, s *Store, treeID, p string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.TreeRootfs(treeID), p))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(data)
}

func TestImportRendersTreeInPass(t *testing.T) {
	s := newStore(t)
	info := importImage(t, s, testImage{name: "example.com/solo", files: []acibuild.File{
		file("etc/motd", "hi"), {Path: "bin", Type: tar.TypeDir, Mode: 0o755},
		{Path: "bin/sh", Type: tar.TypeSymlink, Linkname: "busybox"}}})
	want := treeIDOf([]string{info.ID})
	if !s.HasTree(want) {
		t.Fatalf("import did not render the tree of an image without dependencies")
	}
	done := filepath.Join(s.Dir(), "tree", want, "done")
	before, err := os.Stat(done)
	if err != nil {
		t.Fatal(err)
	}
	treeID, err := s.RenderTree(info.ID[:30])
	if err != nil || treeID != want {
		t.Fatalf("RenderTree = %s %v, want %s", treeID, err, want)
	}
	if after, _ := os.Stat(done); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("RenderTree re-rendered an existing tree")
	}
	if got := readTree(t, s, treeID, "etc/motd"); got != "hi" {
		t.Errorf("etc/motd = %q", got)
	}
	if m, err := os.ReadFile(s.TreeManifest(treeID)); err != nil || !strings.Contains(string(m), "example.com/solo") {
		t.Errorf("tree manifest: %q %v", m, err)
	}
	if imgs, err := s.TreeImages(treeID); err != nil || len(imgs) != 1 || imgs[0] != info.ID {
		t.Errorf("TreeImages: %v %v", imgs, err)
	}
	// Render again after the tree is gone: from the blob this time.
	if err := s.RemoveTree(treeID); err != nil {
		t.Fatal(err)
	}
	if s.HasTree(treeID) {
		t.Fatal("tree still there")
	}
	if err := s.RemoveTree(treeID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveTree twice: %v", err)
	}
	if again, err := s.RenderTree(info.ID); err != nil || again != treeID {
		t.Fatalf("RenderTree: %s %v", again, err)
	}
	if got := readTree(t, s, treeID, "etc/motd"); got != "hi" {
		t.Errorf("etc/motd = %q", got)
	}
	if target, _ := os.Readlink(filepath.Join(s.TreeRootfs(treeID), "bin/sh")); target != "busybox" {
		t.Errorf("bin/sh -> %q", target)
	}
	assertTmpEmpty(t, s)
}

// A->[B,C], C->[D] renders B, D, C, A, later wins.
func TestRenderTreeDependencyOrder(t *testing.T) {
	s := newStore(t)
	d := importImage(t, s, testImage{name: "example.com/d", labels: map[string]string{"version": "1"},
		files: []acibuild.File{file("shared", "d"), file("bd", "d"), file("only-d", "d"), file("dc", "d")}})
	importImage(t, s, testImage{name: "example.com/c", files: []acibuild.File{file("shared", "c"), file("bc", "c"), file("dc", "c")},
		edit: dependsOn(types.Dependency{ImageName: "example.com/d", ImageID: mustHash(t, d.ID)})})
	importImage(t, s, testImage{name: "example.com/b", labels: map[string]string{"version": "2", "os": "linux"},
		files: []acibuild.File{file("shared", "b"), file("bd", "b"), file("bc", "b"), file("only-b", "b"),
			{Path: "lib", Type: tar.TypeSymlink, Linkname: "usr/lib"}}})
	a := importImage(t, s, testImage{name: "example.com/a",
		files: []acibuild.File{file("shared", "a"), file("lib/liba", "a")},
		edit:  dependsOn(dep("example.com/b", "version", "2"), dep("example.com/c"))})

	if s.HasTree(treeIDOf([]string{a.ID})) {
		t.Fatal("an image with dependencies got a tree of its own at import")
	}
	treeID, err := s.RenderTree(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := s.TreeImages(treeID)
	if len(chain) != 4 || chain[0] != a.ID || treeID != treeIDOf(chain) {
		t.Fatalf("chain %v, tree %s", chain, treeID)
	}
	for p, want := range map[string]string{
		"shared": "a", // A over everything
		"bd":     "d", // D comes after B
		"bc":     "c", // C after B
		"dc":     "c", // C after D
		"only-b": "b",
		"only-d": "d",
		// B's symlink lib is replaced by A's directory, not followed.
		"lib/liba": "a",
	} {
		if got := readTree(t, s, treeID, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(s.TreeRootfs(treeID), "lib")); err != nil || !fi.IsDir() {
		t.Errorf("lib: %v %v", fi, err)
	}
	if m, _ := os.ReadFile(s.TreeManifest(treeID)); !strings.Contains(string(m), `"example.com/a"`) {
		t.Errorf("tree manifest is not the upper image's: %s", m)
	}
	again, err := s.RenderTree(a.ID)
	if err != nil || again != treeID {
		t.Fatalf("second RenderTree: %s %v", again, err)
	}
}

func mustHash(t *testing.T, id string) *types.Hash {
	h, err := types.NewHash(id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRenderTreePathWhitelist(t *testing.T) {
	s := newStore(t)
	importImage(t, s, testImage{name: "example.com/base", files: []acibuild.File{
		file("keep", "base"), file("drop", "base"), file("etc/keep.conf", "base"), file("etc/drop.conf", "base")}})
	top := importImage(t, s, testImage{name: "example.com/top", files: []acibuild.File{file("top", "top")},
		edit: func(m *schema.ImageManifest) {
			m.Dependencies = types.Dependencies{dep("example.com/base")}
			m.PathWhitelist = []string{"/keep", "/etc/keep.conf", "/top"}
		}})
	treeID, err := s.RenderTree(top.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	root := s.TreeRootfs(treeID)
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			got = append(got, rel)
		}
		return nil
	})
	if strings.Join(got, " ") != "etc/keep.conf keep top" {
		t.Errorf("files %v, want those of the whitelist", got)
	}
}

func TestRenderTreeMissingDependency(t *testing.T) {
	s := newStore(t)
	a := importImage(t, s, testImage{name: "example.com/a", edit: dependsOn(dep("example.com/missing", "version", "3"))})
	_, err := s.RenderTree(a.ID)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "example.com/missing") {
		t.Fatalf("RenderTree: %v, want ErrNotFound naming the dependency", err)
	}
	assertTmpEmpty(t, s)
}

func TestRenderTreeDependencyCycle(t *testing.T) {
	s := newStore(t)
	importImage(t, s, testImage{name: "example.com/x", edit: dependsOn(dep("example.com/y"))})
	y := importImage(t, s, testImage{name: "example.com/y", edit: dependsOn(dep("example.com/x"))})
	done := make(chan error, 1)
	go func() { _, err := s.RenderTree(y.ID); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cycle") {
			t.Fatalf("RenderTree of a cycle: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RenderTree of a dependency cycle did not return")
	}
}

func TestRemoveTreesAndKeep(t *testing.T) {
	s := newStore(t)
	base := importImage(t, s, testImage{name: "example.com/base", files: []acibuild.File{file("b", "b")}})
	app := importImage(t, s, testImage{name: "example.com/app", edit: dependsOn(dep("example.com/base"))})
	other := importImage(t, s, testImage{name: "example.com/other"})
	appTree, err := s.RenderTree(app.ID)
	if err != nil {
		t.Fatal(err)
	}
	baseTree, _ := s.RenderTree(base.ID)
	otherTree, _ := s.RenderTree(other.ID)

	// The app's tree is in use: kept; base's own tree goes.
	if err := s.Remove(base.ID, appTree); err != nil {
		t.Fatal(err)
	}
	if !s.HasTree(appTree) || s.HasTree(baseTree) || !s.HasTree(otherTree) {
		t.Errorf("trees after Remove: app %v base %v other %v", s.HasTree(appTree), s.HasTree(baseTree), s.HasTree(otherTree))
	}
	if _, err := s.Info(base.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info of a removed image: %v", err)
	}
	if _, err := os.Stat(s.blobPath(base.ID)); !os.IsNotExist(err) {
		t.Errorf("blob survived: %v", err)
	}
	if _, err := s.RenderTree(app.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("RenderTree with a removed dependency: %v", err)
	}
	if err := s.Remove(base.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove twice: %v", err)
	}
	// Without keep, the trees built from it go too.
	if err := s.Remove(app.ID); err != nil {
		t.Fatal(err)
	}
	if s.HasTree(appTree) {
		t.Errorf("tree of a removed image survived")
	}
	trees, _ := s.ListTrees()
	if len(trees) != 1 || trees[0] != otherTree {
		t.Errorf("ListTrees = %v", trees)
	}
	assertTmpEmpty(t, s)
}

func TestTreeIDChecks(t *testing.T) {
	s := newStore(t)
	for _, id := range []string{"", ".", "..", "../x", "a/b"} {
		if s.HasTree(id) {
			t.Errorf("HasTree(%q)", id)
		}
		if err := s.RemoveTree(id); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("RemoveTree(%q): %v", id, err)
		}
	}
}
