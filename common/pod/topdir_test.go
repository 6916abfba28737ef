package pod

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestInitDirsMarksEmbryoTopDir(t *testing.T) {
	dir := t.TempDir()
	if err := initDirs(dir); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(PodsDir(dir), dirEmbryo))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Skipf("%s has no inode flags (%v): nothing to check", dir, err)
	}
	if flags&fsTopdirFL == 0 {
		// tmpfs and others keep no TOPDIR: only ext2/3/4 are checked.
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.EXT4_SUPER_MAGIC {
			t.Errorf("pods/embryo on ext4 without FS_TOPDIR_FL (flags %#x)", flags)
		}
	}
}
