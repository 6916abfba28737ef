package stage2

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrUnknownID is wrapped when a user or group name is not in the image.
var ErrUnknownID = errors.New("not found in the image")

// ResolveUser turns an appc user ("0", a name from the image's /etc/passwd,
// or an absolute path whose owner is meant) into a uid, reading the image
// at root as the host sees it.
func ResolveUser(root, user string) (int, error) {
	return resolveID(root, user, "passwd", func(st *syscall.Stat_t) int { return int(st.Uid) })
}

// ResolveGroup is ResolveUser for groups and /etc/group.
func ResolveGroup(root, group string) (int, error) {
	return resolveID(root, group, "group", func(st *syscall.Stat_t) int { return int(st.Gid) })
}

func resolveID(root, value, db string, owner func(*syscall.Stat_t) int) (int, error) {
	kind := map[string]string{"passwd": "user", "group": "group"}[db]
	if value == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(value); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%s %q: negative id", kind, value)
		}
		return n, nil
	}
	if strings.HasPrefix(value, "/") {
		p, err := ResolveIn(root, value)
		if err != nil {
			return 0, fmt.Errorf("%s from owner of %s: %w", kind, value, err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return 0, fmt.Errorf("%s from owner of %s: %w", kind, value, err)
		}
		return owner(&st), nil
	}
	p, err := ResolveIn(root, "/etc/"+db)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", kind, value, err)
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("%s %q: the image has no /etc/%s: %w", kind, value, db, ErrUnknownID)
		}
		return 0, fmt.Errorf("%s %q: %w", kind, value, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// name:password:id:...
		fields := strings.SplitN(sc.Text(), ":", 4)
		if len(fields) < 3 || fields[0] != value {
			continue
		}
		n, err := strconv.Atoi(fields[2])
		if err != nil {
			return 0, fmt.Errorf("%s %q: bad id %q in /etc/%s", kind, value, fields[2], db)
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s %q: reading /etc/%s: %w", kind, value, db, err)
	}
	return 0, fmt.Errorf("%s %q in /etc/%s: %w", kind, value, db, ErrUnknownID)
}

// ResolveIn returns the host path of p inside root, following symlinks as a
// process chrooted in root would: absolute targets and ".." stay inside
// root. The last component need not exist.
func ResolveIn(root, p string) (string, error) {
	const maxLinks = 40
	links := 0
	rest := strings.Split(filepath.Clean("/"+p), "/")
	cur := "/"
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return filepath.Join(root, next, filepath.Join(rest...)), nil
			}
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolving %s in %s: too many symlinks", p, root)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(root, cur), nil
}
