package mountinfo

import (
	"strings"
	"testing"
)

// A mount whose parent in the tree is still shared is not unmounted: its
// unmount would propagate to the parent's peers (the host's mounts).
func TestUnmountableSkipsSharedParents(t *testing.T) {
	table := []Info{
		{ID: 1, ParentID: 0, MountPoint: "/", Optional: []string{"shared:1"}},
		{ID: 2, ParentID: 1, MountPoint: "/pod", Optional: []string{"shared:2"}},
		{ID: 3, ParentID: 2, MountPoint: "/pod/sys", Optional: []string{"shared:3"}},
		{ID: 4, ParentID: 3, MountPoint: "/pod/sys/fs/cgroup"},
		{ID: 5, ParentID: 1, MountPoint: "/pod/priv"},
	}
	tree := Under(table, "/pod")
	var got []string
	for _, m := range unmountable(table, tree) {
		got = append(got, m.MountPoint)
	}
	// Only /pod/priv: /pod's parent is outside the tree (its peers hold
	// only copies), but /pod is an ancestor of the skipped mounts.
	want := "/pod/priv"
	if strings.Join(got, " ") != want {
		t.Errorf("unmountable = %v, want [%s]", got, want)
	}
}
