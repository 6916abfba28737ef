package mountinfo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// MountError is a failed mount(2), umount2(2) or mount_setattr(2): it names
// every argument so that the error says which of a pod's mounts failed.
type MountError struct {
	Op     string // "mount", "unmount", "setattr"
	Source string
	Target string
	FSType string
	Flags  uintptr
	Data   string
	Err    error
}

func (e *MountError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Source != "" {
		fmt.Fprintf(&b, " %s on", e.Source)
	}
	fmt.Fprintf(&b, " %s", e.Target)
	var attrs []string
	if e.FSType != "" {
		attrs = append(attrs, "type "+e.FSType)
	}
	if e.Op == "unmount" {
		attrs = append(attrs, "flags "+unmountFlagString(e.Flags))
	} else if e.Flags != 0 || e.Op == "mount" {
		attrs = append(attrs, "flags "+mountFlagString(e.Flags))
	}
	if e.Data != "" {
		attrs = append(attrs, "data "+e.Data)
	}
	if len(attrs) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(attrs, ", "))
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *MountError) Unwrap() error { return e.Err }

var mountFlagNames = []struct {
	flag uintptr
	name string
}{
	{unix.MS_RDONLY, "MS_RDONLY"}, {unix.MS_NOSUID, "MS_NOSUID"}, {unix.MS_NODEV, "MS_NODEV"},
	{unix.MS_NOEXEC, "MS_NOEXEC"}, {unix.MS_REMOUNT, "MS_REMOUNT"}, {unix.MS_BIND, "MS_BIND"},
	{unix.MS_MOVE, "MS_MOVE"}, {unix.MS_REC, "MS_REC"}, {unix.MS_PRIVATE, "MS_PRIVATE"},
	{unix.MS_SLAVE, "MS_SLAVE"}, {unix.MS_SHARED, "MS_SHARED"}, {unix.MS_UNBINDABLE, "MS_UNBINDABLE"},
	{unix.MS_NOATIME, "MS_NOATIME"}, {unix.MS_RELATIME, "MS_RELATIME"}, {unix.MS_STRICTATIME, "MS_STRICTATIME"},
}

func mountFlagString(flags uintptr) string {
	var names []string
	for _, f := range mountFlagNames {
		if flags&f.flag != 0 {
			names = append(names, f.name)
			flags &^= f.flag
		}
	}
	if flags != 0 || len(names) == 0 {
		names = append(names, fmt.Sprintf("%#x", flags))
	}
	return strings.Join(names, "|")
}

func unmountFlagString(flags uintptr) string {
	switch flags {
	case 0:
		return "0"
	case unix.MNT_DETACH:
		return "MNT_DETACH"
	case unix.MNT_FORCE:
		return "MNT_FORCE"
	}
	return fmt.Sprintf("%#x", flags)
}

// Mount is mount(2) returning a *MountError.
func Mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &MountError{Op: "mount", Source: source, Target: target, FSType: fstype, Flags: flags, Data: data, Err: err}
	}
	return nil
}

// Unmount is umount2(2) returning a *MountError.
func Unmount(target string, flags int) error {
	if err := unix.Unmount(target, flags); err != nil {
		return &MountError{Op: "unmount", Target: target, Flags: uintptr(flags), Err: err}
	}
	return nil
}

// Under returns the mounts of infos whose mount point is path or below it,
// deepest first (and, on one mount point, the most recent first), which is
// the order in which they can be unmounted. path must be clean and absolute.
func Under(infos []Info, path string) []Info {
	prefix := path + "/"
	if path == "/" {
		prefix = "/"
	}
	var out []Info
	for _, in := range infos {
		if in.MountPoint == path || strings.HasPrefix(in.MountPoint, prefix) {
			out = append(out, in)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		di, dj := strings.Count(out[i].MountPoint, "/"), strings.Count(out[j].MountPoint, "/")
		if di != dj {
			return di > dj
		}
		if out[i].MountPoint != out[j].MountPoint {
			return out[i].MountPoint > out[j].MountPoint
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// maxUnmountRounds bounds the re-reads of the mount table: mount
// propagation can make new mounts appear below path while we unmount.
const maxUnmountRounds = 8

// UnmountUnder unmounts every mount point at or below path in the calling
// thread's mount namespace, deepest first, after making them private
// (MakePrivate): no unmount here propagates out of the tree. A busy mount is detached
// (MNT_DETACH) rather than left behind, so that the directory can be removed
// afterwards. A mount that disappears by itself meanwhile (propagation, a
// parent detached) is not an error. The first failure is returned as a
// *MountError once every other mount has been tried.
func UnmountUnder(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("unmounting under %s: %w", path, err)
	}
	// mountinfo shows resolved paths.
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unmounting under %s: %w", path, err)
	}
	var firstErr error
	for round := 0; round < maxUnmountRounds; round++ {
		infos, err := Read()
		if err != nil {
			return fmt.Errorf("unmounting under %s: %w", path, err)
		}
		mounts := Under(infos, abs)
		if len(mounts) == 0 {
			return nil
		}
		if MakePrivate(mounts) {
			if infos, err = Read(); err != nil {
				return fmt.Errorf("unmounting under %s: %w", path, err)
			}
			mounts = Under(infos, abs)
		}
		progress := false
		for _, m := range unmountable(infos, mounts) {
			switch err := unmountOne(m.MountPoint); {
			case err == nil:
				progress = true
			case firstErr == nil:
				firstErr = err
			}
		}
		if !progress {
			break
		}
	}
	if firstErr != nil {
		return firstErr
	}
	infos, err := Read()
	if err != nil {
		return fmt.Errorf("unmounting under %s: %w", path, err)
	}
	if left := Under(infos, abs); len(left) > 0 {
		return &MountError{Op: "unmount", Target: left[0].MountPoint, Err: unix.EBUSY}
	}
	return nil
}

// MakePrivate makes the mounts of a tree (as Under returns them) private,
// shallowest first, MS_REC on each so that mounts hidden under another one
// are reached through their ancestors: an unmount in a private tree never
// propagates, where under a shared mount it reaches every peer (a bind of
// the host's /sys that a stage1 left shared would take the host's cgroup
// mounts with it). It says whether it changed any mount.
func MakePrivate(mounts []Info) bool {
	changed := false
	seen := map[string]bool{}
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if seen[m.MountPoint] || !shared(m) {
			continue
		}
		seen[m.MountPoint] = true
		if unix.Mount("", m.MountPoint, "", unix.MS_REC|unix.MS_PRIVATE, "") == nil {
			changed = true
		}
	}
	return changed
}

// PrivateUnderEach makes the mounts at or below each of paths private (see
// MakePrivate), reading the mount table once, before anything under them
// (a stage1's gc, say) unmounts.
func PrivateUnderEach(paths []string) error {
	infos, err := Read()
	if err != nil {
		return err
	}
	for _, p := range paths {
		if a, err := filepath.Abs(p); err == nil {
			if r, err := filepath.EvalSymlinks(a); err == nil {
				a = r
			}
			MakePrivate(Under(infos, a))
		}
	}
	return nil
}

func privateEach(found map[int][]Info) bool {
	changed := false
	for _, ms := range found {
		if MakePrivate(ms) {
			changed = true
		}
	}
	return changed
}

func shared(m Info) bool {
	for _, o := range m.Optional {
		if strings.HasPrefix(o, "shared:") {
			return true
		}
	}
	return false
}

// unmountable is mounts without those whose parent mount is still shared
// and inside the tree, and without their ancestors (hidden where MakePrivate could not reach it): their
// unmount would propagate to the parent's peers, which may be the host's
// own mounts. A tree's top mounts have parents outside it, whose peers
// hold only copies of the tree's mounts.
func unmountable(table, mounts []Info) []Info {
	byID := make(map[int]Info, len(table))
	for _, in := range table {
		byID[in.ID] = in
	}
	inTree := make(map[int]bool, len(mounts))
	for _, m := range mounts {
		inTree[m.ID] = true
	}
	// Nor their ancestors: a busy mount is detached, and detaching takes
	// the whole tree below it, propagating as the unmounts one by one
	// would.
	skip := map[int]bool{}
	for _, m := range mounts {
		if p, ok := byID[m.ParentID]; ok && inTree[p.ID] && shared(p) {
			for id := m.ID; inTree[id] && !skip[id]; id = byID[id].ParentID {
				skip[id] = true
			}
		}
	}
	out := mounts[:0:0]
	for _, m := range mounts {
		if !skip[m.ID] {
			out = append(out, m)
		}
	}
	return out
}

// unmountOne unmounts target, detaching it when busy. A mount point that is
// no longer one (EINVAL) or is gone (ENOENT) counts as unmounted.
func unmountOne(target string) error {
	err := unix.Unmount(target, 0)
	if err == unix.EBUSY {
		err = unix.Unmount(target, unix.MNT_DETACH)
		if err != nil {
			return &MountError{Op: "unmount", Target: target, Flags: unix.MNT_DETACH, Err: err}
		}
		return nil
	}
	if err == nil || err == unix.EINVAL || err == unix.ENOENT {
		return nil
	}
	return &MountError{Op: "unmount", Target: target, Err: err}
}

// unmountWorkers is how many directories UnmountUnderEach unmounts at once.
const unmountWorkers = 16

// UnmountUnderEach is UnmountUnder for many directories at once (gc of many
// pods): the mount table is read once per round for all of them rather than
// once per directory, since reading it costs time in proportion to the
// number of mounts, which grows with the number of pods. It returns one
// error per path (nil when nothing is mounted below it any more).
func UnmountUnderEach(paths []string) []error {
	errs := make([]error, len(paths))
	abs := make([]string, len(paths))
	index := make(map[string]int, len(paths))
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err == nil {
			if resolved, rerr := filepath.EvalSymlinks(a); rerr == nil {
				a = resolved
			} else if !errors.Is(rerr, os.ErrNotExist) {
				err = rerr
			}
		}
		if err != nil {
			errs[i] = fmt.Errorf("unmounting under %s: %w", p, err)
			continue
		}
		abs[i] = a
		index[a] = i
	}
	// byPath gives, for each path still to do, its mounts deepest first.
	var lastTable []Info
	byPath := func() (map[int][]Info, error) {
		infos, err := Read()
		if err != nil {
			return nil, err
		}
		lastTable = infos
		found := map[int][]Info{}
		for _, in := range infos {
			for d := in.MountPoint; ; d = filepath.Dir(d) {
				if i, ok := index[d]; ok && errs[i] == nil {
					found[i] = append(found[i], in)
					break
				}
				if d == "/" || d == "." {
					break
				}
			}
		}
		for i, ms := range found {
			found[i] = Under(ms, abs[i])
		}
		return found, nil
	}
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("unmounting under %s: %w", paths[i], err)
			}
		}
		return errs
	}
	// Other goroutines run on other threads, which are in the calling
	// thread's mount namespace only if it is the process's.
	workers := 1
	if inProcessNamespace() {
		workers = unmountWorkers
	}
	for round := 0; round < maxUnmountRounds; round++ {
		found, err := byPath()
		if err != nil {
			return fail(err)
		}
		if len(found) == 0 {
			return errs
		}
		// All of them private first, on the calling thread: see
		// MakePrivate. Then only what can go without propagating.
		if privateEach(found) {
			if found, err = byPath(); err != nil {
				return fail(err)
			}
		}
		for i, mounts := range found {
			found[i] = unmountable(lastTable, mounts)
		}
		var progress atomic.Bool
		todo := make(chan int, len(found))
		for i := range found {
			todo <- i
		}
		close(todo)
		// Each unmount waits for an RCU grace period in the kernel
		// (milliseconds): unmounting several directories at once lets
		// the waits overlap. One directory's mounts stay in order.
		work := func() {
			for i := range todo {
				for _, m := range found[i] {
					switch err := unmountOne(m.MountPoint); {
					case err == nil:
						progress.Store(true)
					case errs[i] == nil:
						errs[i] = err
					}
				}
			}
		}
		if workers == 1 {
			work() // on the calling thread, in its namespace
		} else {
			var wg sync.WaitGroup
			for w := 0; w < min(workers, len(found)); w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					work()
				}()
			}
			wg.Wait()
		}
		if !progress.Load() {
			break
		}
	}
	found, err := byPath()
	if err != nil {
		return fail(err)
	}
	for i, left := range found {
		errs[i] = &MountError{Op: "unmount", Target: left[0].MountPoint, Err: unix.EBUSY}
	}
	return errs
}

// inProcessNamespace reports whether every thread of the process is in
// the calling thread's mount namespace, so that work handed to other
// goroutines (which run on any thread) sees the same mounts. Comparing
// with the main thread alone is not enough: the calling thread may be the
// main thread itself, after it unshared its namespace.
func inProcessNamespace() bool {
	var self unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/mnt", &self) != nil {
		return false
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false
	}
	for _, task := range tasks {
		var ns unix.Stat_t
		err := unix.Stat("/proc/self/task/"+task.Name()+"/ns/mnt", &ns)
		if errors.Is(err, unix.ENOENT) {
			continue // the thread has exited since the listing
		}
		if err != nil || ns.Dev != self.Dev || ns.Ino != self.Ino {
			return false
		}
	}
	return true
}
