package fly

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/mountinfo"
	"github.com/rktng/rkt/common/stage1"
)

// run is the run entrypoint. Its working directory is the pod directory,
// RKT_LOCK_FD the pod's locked directory fd. It sets up the app's mounts in
// a private mount namespace, chroots into the app's rootfs and execs the
// app, which thereby keeps the lock (the pod is running while the app
// lives) and whose exit status becomes rkt's. It returns only on failure.
//
// Speed matters (rkt run with fly must stay within a few ms of a bare
// chroot), so run does only what the app needs: no goroutines, no child
// processes, one pass over the manifests.
func run(log *logger, args []string) error {
	ra, err := stage1.ParseRunArgs(args)
	if err != nil {
		return err
	}
	log.debug = log.debug || ra.Debug
	if ra.IPC == "private" {
		return fmt.Errorf("--ipc=private: fly has no IPC namespace, the app uses the host's; use the default stage1")
	}
	if ra.PrivateUsers != "" {
		return fmt.Errorf("--private-users=%s: fly has no user namespace; use the default stage1", ra.PrivateUsers)
	}
	for _, n := range ra.Net {
		if n != "default" && n != "host" {
			log.warnf("--net=%s ignored: fly has no network namespace, the app uses the host's network", strings.Join(ra.Net, ","))
			break
		}
	}
	lockFD, err := lockFDFromEnv(log.env)
	if err != nil {
		return err
	}
	// Created mount targets and empty volumes get exact modes; the app
	// gets the caller's umask back.
	umask := syscall.Umask(0o022)

	podDir, err := unix.Getwd()
	if err != nil {
		return fmt.Errorf("pod directory: %w", err)
	}
	pm, err := readPodManifest(podDir)
	if err != nil {
		return err
	}
	rapp, err := theApp(pm, "")
	if err != nil {
		return err
	}
	im, err := readImageManifest(podDir, rapp.Name)
	if err != nil {
		return err
	}
	app, err := effectiveApp(rapp, im)
	if err != nil {
		return err
	}
	warnIsolators(log, pm, app)

	rootfs := appRootfsPath(podDir, rapp.Name)
	if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
		return fmt.Errorf("rootfs of app %s: %s is not a directory (did stage0 render it?)", rapp.Name, rootfs)
	}
	vols, err := volumeMounts(podDir, pm, rapp, app, im)
	if err != nil {
		return err
	}
	dns, err := dnsMounts(podDir, rootfs, ra.DNSConfMode.Resolv, ra.DNSConfMode.Hosts)
	if err != nil {
		return err
	}
	// Not written to rkt/env/<app>: enter derives the same environment from
	// the manifests, and a file write costs more than that.
	env := appEnv(rapp.Name, app, im)
	if ra.MDSToken != "" {
		// fly shares the host's network: the service is on its loopback.
		env = append(env, "AC_METADATA_URL=http://127.0.0.1:"+strconv.Itoa(stage1.MetadataPort)+"/"+ra.MDSToken)
	}

	// The new mount namespace is this thread's (hence LockOSThread in
	// init); making everything a slave keeps our mounts from propagating
	// to the host while host unmounts still reach us. The namespace, and
	// every mount in it, dies with the app.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("creating mount namespace: %w", err)
	}
	if err := mountinfo.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("isolating mounts from the host: %w", err)
	}
	if rapp.ReadOnlyRootFS {
		// A read-only rootfs needs a mount of its own to flip.
		if err := mountinfo.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("rootfs of app %s: %w", rapp.Name, err)
		}
	}
	if err := systemFiles(rootfs); err != nil {
		return fmt.Errorf("rootfs of app %s: %w", rapp.Name, err)
	}
	for _, group := range [][]bind{systemMounts, vols, dns} {
		for _, b := range group {
			log.debugf("mounting %s at %s", b.source, b.target)
			if err := b.mount(rootfs); err != nil {
				return err
			}
		}
	}
	if rapp.ReadOnlyRootFS {
		if err := makeReadOnly(rootfs, false); err != nil {
			return fmt.Errorf("read-only rootfs of app %s: %w", rapp.Name, err)
		}
	}

	if err := writePID(podDir); err != nil {
		return err
	}
	// The app is all there is to supervise: the pod is ready as it starts.
	// Best effort: it only serves rkt 1.30's `status --wait-ready`.
	_ = os.Symlink(stage1.SupervisorReady, filepath.Join(stage1RootfsPath(podDir), stage1.SupervisorStatusFile))
	if err := syscall.Chroot(rootfs); err != nil {
		return fmt.Errorf("chroot to %s: %w", rootfs, err)
	}
	return execApp(log, rapp.Name, app, env, lockFD, umask)
}

// execApp finishes in the app's root: working directory, credentials,
// executable lookup, descriptors, exec. Shared by run and enter; keepFD is
// a descriptor to pass on (-1: none), umask the one to restore (-1: keep).
func execApp(log *logger, name string, app *appSection, env []string, keepFD, umask int) error {
	wd := app.WorkingDirectory
	if wd == "" {
		wd = "/"
	}
	if err := os.Chdir(wd); err != nil {
		return fmt.Errorf("working directory %s of app %s: %w", wd, name, unwrapPathError(err))
	}
	c, err := resolveCreds("/", app)
	if err != nil {
		return fmt.Errorf("app %s: %w", name, err)
	}
	exe, err := lookPath(app.Exec[0], getenv(env, "PATH"))
	if err != nil {
		return fmt.Errorf("app %s: %w", name, err)
	}
	if err := setCreds(c); err != nil {
		return fmt.Errorf("app %s: %w", name, err)
	}
	if err := closeOnExecExcept(keepFD); err != nil {
		return err
	}
	if umask >= 0 {
		syscall.Umask(umask)
	}
	log.debugf("executing %q as %d:%d in %s", []string(app.Exec), c.uid, c.gid, wd)
	err = syscall.Exec(exe, app.Exec, env)
	return fmt.Errorf("executing %s of app %s: %w", exe, name, err)
}

// lockFDFromEnv is the pod lock stage0 hands over. It must survive the exec:
// the pod is "running" exactly as long as the app holds it.
func lockFDFromEnv(env Env) (int, error) {
	s := env(stage1.EnvLockFD)
	if s == "" {
		return -1, fmt.Errorf("%s is not set: run must be started by rkt with the pod lock", stage1.EnvLockFD)
	}
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 0 {
		return -1, fmt.Errorf("%s=%q is not a file descriptor", stage1.EnvLockFD, s)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		return -1, fmt.Errorf("%s=%d: %w", stage1.EnvLockFD, fd, err)
	}
	return fd, nil
}

// closeOnExecExcept marks every descriptor above stderr close-on-exec but
// keep (-1: none), so the app inherits stdio and the pod lock only.
func closeOnExecExcept(keep int) error {
	const maxFD = ^uint(0)
	ranges := [][2]uint{{3, maxFD}}
	if keep >= 3 {
		ranges = [][2]uint{{3, uint(keep) - 1}, {uint(keep) + 1, maxFD}}
	}
	for _, r := range ranges {
		if r[0] > r[1] {
			continue
		}
		if err := unix.CloseRange(r[0], r[1], unix.CLOSE_RANGE_CLOEXEC); err != nil {
			return fmt.Errorf("marking descriptors close-on-exec: %w", err)
		}
	}
	return nil
}

// warnIsolators says, once per isolator name, that fly enforces none: appc
// lets an executor ignore isolators but not silently.
func warnIsolators(log *logger, pm *podManifest, app *appSection) {
	seen := map[string]bool{}
	var names []string
	for _, is := range append(append([]isolator(nil), pm.Isolators...), app.Isolators...) {
		if !seen[is.Name] {
			seen[is.Name] = true
			names = append(names, is.Name)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		log.warnf("isolator %s is not enforced: fly applies no isolators", n)
	}
}

// writePID records the pid enter and stop act on: ours, which the app
// inherits with the exec. One write(2) of a few bytes: a reader sees the
// file empty or complete (common/pod's PID treats empty as "not yet"), and
// create+rename would cost a second journalled metadata update.
func writePID(podDir string) error {
	p := filepath.Join(podDir, pidFile)
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("writing pid: %w", &os.PathError{Op: "open", Path: p, Err: err})
	}
	_, err = unix.Write(fd, []byte(strconv.Itoa(os.Getpid())))
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing pid to %s: %w", p, err)
	}
	return nil
}
