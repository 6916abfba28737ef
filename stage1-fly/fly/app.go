package fly

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// defaultPath is appc's PATH for apps whose image does not set one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// containerName is the value of $container, which appc requires
// ("a concise indicator the environment is in a container").
const containerName = "rkt"

// theApp picks the app fly runs: the only one of the pod (fly runs exactly
// one), or the named one.
func theApp(pm *podManifest, name string) (*runtimeApp, error) {
	if name != "" {
		for i := range pm.Apps {
			if pm.Apps[i].Name == name {
				return &pm.Apps[i], nil
			}
		}
		return nil, fmt.Errorf("app %q is not in the pod", name)
	}
	if len(pm.Apps) != 1 {
		names := make([]string, len(pm.Apps))
		for i, a := range pm.Apps {
			names[i] = a.Name
		}
		return nil, fmt.Errorf("fly runs exactly one app per pod, this pod has %d (%s)", len(pm.Apps), strings.Join(names, ", "))
	}
	return &pm.Apps[0], nil
}

// effectiveApp is the app section to run: the pod manifest's, which stage0
// fills from the image and the command line, else the image's.
func effectiveApp(ra *runtimeApp, im *imageManifest) (*appSection, error) {
	a := ra.App
	if a == nil && im != nil {
		a = im.App
	}
	if a == nil {
		return nil, fmt.Errorf("app %s has nothing to run: no app section in the pod or image manifest", ra.Name)
	}
	if len(a.Exec) == 0 || a.Exec[0] == "" {
		return nil, fmt.Errorf("app %s has an empty exec (give --exec)", ra.Name)
	}
	return a, nil
}

// appEnv builds the app's environment, later entries winning: appc's
// defaults (PATH, container), the image's environment, the pod manifest's
// app environment, then AC_APP_NAME, which must name the app.
func appEnv(name string, a *appSection, im *imageManifest) []string {
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	set("PATH", defaultPath)
	set("container", containerName)
	if im != nil && im.App != nil && im.App != a {
		for _, e := range im.App.Environment {
			set(e.Name, e.Value)
		}
	}
	for _, e := range a.Environment {
		set(e.Name, e.Value)
	}
	set("AC_APP_NAME", name)
	env := make([]string, len(keys))
	for i, k := range keys {
		env[i] = k + "=" + vals[k]
	}
	return env
}

func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPath finds the app's executable in the current root the way execvp
// does: a name with a slash is used as it is, a bare name is searched in
// the app's PATH.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, file)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH %s", file, pathEnv)
}

// creds are the numeric credentials the app runs with.
type creds struct {
	uid, gid int
	groups   []int
}

// resolveCreds turns the app's user and group into numbers, reading the
// image's /etc/passwd and /etc/group under root for names, and taking the
// owner of a path for values starting with "/". stage0 normally passes
// numbers already.
func resolveCreds(root string, a *appSection) (creds, error) {
	c := creds{groups: a.SupplementaryGIDs}
	var err error
	if c.uid, err = resolveID(root, a.User, "/etc/passwd", "user"); err != nil {
		return c, err
	}
	if c.gid, err = resolveID(root, a.Group, "/etc/group", "group"); err != nil {
		return c, err
	}
	if c.groups == nil {
		c.groups = []int{}
	}
	return c, nil
}

func resolveID(root, value, db, kind string) (int, error) {
	if value == "" {
		return 0, fmt.Errorf("app %s is empty", kind)
	}
	if n, err := strconv.Atoi(value); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("app %s %q is negative", kind, value)
		}
		return n, nil
	}
	if strings.HasPrefix(value, "/") {
		p, err := secureJoin(root, value)
		if err != nil {
			return 0, fmt.Errorf("app %s %q: %w", kind, value, err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return 0, fmt.Errorf("app %s %q (owner of a path): %w", kind, value, err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if kind == "user" {
			return int(sys.Uid), nil
		}
		return int(sys.Gid), nil
	}
	p, err := secureJoin(root, db)
	if err != nil {
		return 0, fmt.Errorf("app %s %q: %w", kind, value, err)
	}
	id, err := lookupName(p, value)
	if err != nil {
		return 0, fmt.Errorf("app %s %q: %w in the image's %s", kind, value, err, db)
	}
	return id, nil
}

// lookupName finds name in a passwd- or group-format file and returns its
// third field (the uid or gid).
func lookupName(file, name string) (int, error) {
	b, err := readFile(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, errors.New("not found (no such file)")
		}
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Split(line, ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		id, err := strconv.Atoi(fields[2])
		if err != nil || id < 0 {
			return 0, fmt.Errorf("bad id %q", fields[2])
		}
		return id, nil
	}
	return 0, errors.New("not found")
}

// setCreds switches the calling thread to c. Only this thread matters: it
// execs next, and execve ends the others. The syscall package's setters
// would change every thread by signalling each in turn, which costs time on
// the path every `rkt run` takes and gains nothing here.
func setCreds(c creds) error {
	if err := unix.Setgroups(c.groups); err != nil {
		return fmt.Errorf("setting supplementary groups %v: %w", c.groups, err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(c.gid), uintptr(c.gid), uintptr(c.gid)); e != 0 {
		return fmt.Errorf("setting gid %d: %w", c.gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(c.uid), uintptr(c.uid), uintptr(c.uid)); e != 0 {
		return fmt.Errorf("setting uid %d: %w", c.uid, e)
	}
	return nil
}
