package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NspawnVersionCache is the file, in rkt's tmp/ of the data dir, that
// remembers the host's nspawn version: asking `systemd-nspawn --version`
// costs a process start (~4 ms of CPU, more under load) on every pod start.
// Each line is "KEY VERSION"; the key names the binary by path, device,
// inode, size, mtime and ctime, so that an upgrade or any replacement of
// the binary is a miss and nspawn is asked again. The file is a cache: a
// missing, unreadable or stale one only costs the probe.
const NspawnVersionCache = "stage1-host-nspawn-version"

// cachedNspawnVersion is nspawnVersion(path), remembered in dir when dir
// is not empty.
func cachedNspawnVersion(path, dir string) (int, error) {
	key, err := nspawnKey(path)
	if err != nil || dir == "" {
		return nspawnVersion(path)
	}
	file := filepath.Join(dir, NspawnVersionCache)
	if v, ok := readNspawnCache(file, key); ok {
		return v, nil
	}
	v, err := nspawnVersion(path)
	if err != nil {
		return 0, err
	}
	// Best effort: a data dir that cannot be written only loses the cache.
	_ = writeNspawnCache(dir, file, key, v)
	return v, nil
}

// nspawnKey identifies the binary at path (after symlinks).
func nspawnKey(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	if strings.ContainsAny(path, " \n") {
		return "", errors.New("path with a space or newline")
	}
	return fmt.Sprintf("%s:%d:%d:%d:%d.%d:%d.%d", path, st.Dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec), nil
}

func readNspawnCache(file, key string) (int, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// writeNspawnCache replaces file atomically (a temporary file renamed over
// it), so that a concurrent start or a kill leaves the old file or the new.
func writeNspawnCache(dir, file, key string, v int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, NspawnVersionCache+".*")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s %d\n", key, v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// nspawnCacheDir is <dataDir>/tmp for a pod directory laid out as rkt lays
// it out when it runs a pod (<dataDir>/pods/run/<uuid>), "" otherwise: no
// cache is written outside rkt's data dir.
func nspawnCacheDir(podDir string) string {
	abs, err := filepath.Abs(podDir)
	if err != nil {
		return ""
	}
	state := filepath.Dir(abs)
	pods := filepath.Dir(state)
	if filepath.Base(state) != "run" || filepath.Base(pods) != "pods" {
		return ""
	}
	return filepath.Join(filepath.Dir(pods), "tmp")
}
