package stage2

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// StartError is a failure to start an app or handler; Code is the helper's
// exit status for it.
type StartError struct {
	App  string
	Code int
	Err  error
}

func (e *StartError) Error() string { return fmt.Sprintf("app %q: %v", e.App, e.Err) }
func (e *StartError) Unwrap() error { return e.Err }

func (a *App) fail(code int, format string, args ...any) error {
	return &StartError{App: a.Name, Code: code, Err: fmt.Errorf(format, args...)}
}

// EnterRoot makes the app's rootfs the process's root. It must run as root,
// before anything that needs the app's view of the filesystem.
func (a *App) EnterRoot() error {
	if err := syscall.Chroot(a.Root); err != nil {
		return a.fail(ExitConfig, "entering rootfs %s: %w", a.Root, err)
	}
	if err := os.Chdir("/"); err != nil {
		return a.fail(ExitConfig, "entering rootfs %s: %w", a.Root, err)
	}
	return nil
}

// env is the environment the app's processes get: the App's, plus the
// notification socket the service manager gave the helper when the image
// speaks sd_notify.
func (a *App) env() []string {
	env := a.Environment
	if a.Notify {
		if s := os.Getenv("NOTIFY_SOCKET"); s != "" {
			env = append(env[:len(env):len(env)], "NOTIFY_SOCKET="+s)
		}
	}
	return env
}

func (a *App) workdir() string {
	if a.WorkingDirectory == "" {
		return "/"
	}
	return a.WorkingDirectory
}

// LookPath finds name as the app's exec[0] is found: names with a slash as
// they are, others in the app's PATH. The process must be in the app's root.
func (a *App) LookPath(name string) (string, error) {
	if name == "" {
		return "", a.fail(ExitExec, "empty executable name")
	}
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", a.fail(ExitExec, "executable %q: %w", name, err)
		}
		return name, nil
	}
	path, ok := a.Getenv("PATH")
	if !ok {
		path = DefaultPath
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", a.fail(ExitExec, "executable %q not found in PATH %q: %w", name, path, ErrNotFound)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ErrNotFound
		}
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return errors.New("is not executable")
	}
	return nil
}

// checkWorkdir reports a missing working directory in words; chdir alone
// would say ENOENT without saying which directory of which app.
func (a *App) checkWorkdir() error {
	fi, err := os.Stat(a.workdir())
	switch {
	case errors.Is(err, os.ErrNotExist):
		return a.fail(ExitChdir, "working directory %q: %w", a.workdir(), ErrNotFound)
	case err != nil:
		return a.fail(ExitChdir, "working directory %q: %w", a.workdir(), err)
	case !fi.IsDir():
		return a.fail(ExitChdir, "working directory %q is not a directory", a.workdir())
	}
	return nil
}

// RunHandlers runs each command in turn, as the app, waiting for each; the
// first that fails stops the others and its status becomes the error's
// Code. The process must be in the app's root.
func (a *App) RunHandlers(event string, handlers [][]string) error {
	for _, h := range handlers {
		if len(h) == 0 {
			continue
		}
		if err := a.checkWorkdir(); err != nil {
			return err
		}
		path, err := a.LookPath(h[0])
		if err != nil {
			return err
		}
		cmd := exec.Command(path, h[1:]...)
		cmd.Args[0] = h[0]
		cmd.Env = a.env()
		cmd.Dir = a.workdir()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: a.credential()}
		if err := cmd.Run(); err != nil {
			code := ExitExec
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					code = 128 + int(ws.Signal())
				}
			}
			return a.fail(code, "%s handler %q: %w", event, h, err)
		}
	}
	return nil
}

func (a *App) credential() *syscall.Credential {
	groups := make([]uint32, len(a.SupplementaryGIDs))
	for i, g := range a.SupplementaryGIDs {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(a.UID), Gid: uint32(a.GID), Groups: groups}
}

// ExecAs replaces the process with argv run as the app: credentials, working
// directory, environment. The process must be in the app's root. It returns
// only on failure.
func (a *App) ExecAs(argv []string) error {
	if len(argv) == 0 {
		return a.fail(ExitExec, "no command to run")
	}
	if err := a.checkWorkdir(); err != nil {
		return err
	}
	path, err := a.LookPath(argv[0])
	if err != nil {
		return err
	}
	// Capabilities, no-new-privileges and seccomp are per thread: they
	// are set on this one, which then execs.
	runtime.LockOSThread()
	if err := a.confineBefore(); err != nil {
		return err
	}
	if err := syscall.Setgroups(toInts(a.SupplementaryGIDs)); err != nil {
		return a.fail(ExitGroup, "setting supplementary groups %v: %w", a.SupplementaryGIDs, err)
	}
	if err := syscall.Setgid(a.GID); err != nil {
		return a.fail(ExitGroup, "setting group %d: %w", a.GID, err)
	}
	if err := syscall.Setuid(a.UID); err != nil {
		return a.fail(ExitUser, "setting user %d: %w", a.UID, err)
	}
	if err := os.Chdir(a.workdir()); err != nil {
		return a.fail(ExitChdir, "working directory %q: %w", a.workdir(), err)
	}
	if err := a.confineAfter(); err != nil {
		return err
	}
	err = syscall.Exec(path, argv, a.env())
	return a.fail(ExitExec, "executing %q: %w", path, err)
}

func toInts(gids []int) []int {
	if gids == nil {
		return []int{}
	}
	return gids
}

// EnterCommand is the command `rkt enter` runs when given none: bash when
// the image has it, else sh. The process must be in the app's root.
func (a *App) EnterCommand(cmd []string) []string {
	if len(cmd) == 1 && cmd[0] == "/bin/bash" {
		if executable("/bin/bash") != nil {
			return []string{"/bin/sh"}
		}
	}
	return cmd
}
