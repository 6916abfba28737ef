// Package pod is rkt's on-disk pod protocol: where a pod directory lives
// (<dataDir>/pods/<state dir>/<uuid>), which state it is in, how it moves
// between states and how its directory lock says whether a process still
// owns it. layout.go names the files inside a pod directory.
//
// A pod's state is the directory it is in together with whether the flock(2)
// on the pod directory is held:
//
//	pods/embryo/<uuid>          embryo (being created)
//	pods/prepare/<uuid>         locked: preparing; unlocked: aborted prepare
//	pods/prepared/<uuid>        prepared
//	pods/run/<uuid>             locked: running; unlocked: exited
//	pods/exited-garbage/<uuid>  locked: exited deleting; unlocked: exited garbage
//	pods/garbage/<uuid>         locked: deleting; unlocked: garbage
//
// Moves between states are rename(2)s of the pod directory, so that a pod is
// in exactly one state directory whatever is killed when; the lock lives on
// an open file description of the directory, so it survives the renames and
// dies with the last process holding it. The renames are not followed by
// fsync: after a power loss a pod may come back in an earlier state
// directory, never in two.
//
// A *Pod holds the pod directory open; Close releases it (and any lock).
// A Pod is not safe for concurrent use.
package pod

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
)

// Error categories; errors from this package wrap one of them.
var (
	ErrNotFound  = errors.New("not found")
	ErrAmbiguous = errors.New("ambiguous pod UUID prefix")
	ErrBadState  = errors.New("pod is in the wrong state")
	ErrLocked    = errors.New("pod is locked by another process")
)

// State is a pod's state as rkt names it (rkt status, rkt list).
type State string

// The states, in lifecycle order.
const (
	Embryo         State = "embryo"
	Preparing      State = "preparing"
	AbortedPrepare State = "aborted prepare"
	Prepared       State = "prepared"
	Running        State = "running"
	Exited         State = "exited"
	ExitedGarbage  State = "exited garbage"
	ExitedDeleting State = "exited deleting"
	Garbage        State = "garbage"
	Deleting       State = "deleting"
)

func (s State) String() string { return string(s) }

// JSONName is the state for machine-readable output (`rkt list
// --format=json`, `rkt status --format=json`, the api service), restricted
// to the values clients match on: embryo, preparing, prepared, running,
// deleting, exited, garbage.
//
// rkt 1.30 printed its internal names verbatim, so a client could also meet
// "aborted prepare", "exited garbage" and "exited deleting", which no known
// client handles. We map them to the state a client should act on:
//
//	aborted prepare -> garbage   (it will never run; gc removes it)
//	exited garbage  -> exited    (it ran and ended; its exit codes are kept)
//	exited deleting -> deleting  (gc is removing it)
//
// Text output (`rkt status`, `rkt list`) keeps the full names, as rkt did.
func (s State) JSONName() string {
	switch s {
	case AbortedPrepare:
		return string(Garbage)
	case ExitedGarbage:
		return string(Exited)
	case ExitedDeleting:
		return string(Deleting)
	}
	return string(s)
}

// AfterRun reports whether a pod in state s has run and ended.
func (s State) AfterRun() bool {
	return s == Exited || s == ExitedGarbage || s == ExitedDeleting
}

// The state directories below <dataDir>/pods, in lifecycle order: a pod only
// ever moves to a directory later in this list (see lookup).
const (
	dirEmbryo        = "embryo"
	dirPrepare       = "prepare"
	dirPrepared      = "prepared"
	dirRun           = "run"
	dirExitedGarbage = "exited-garbage"
	dirGarbage       = "garbage"
)

var stateDirs = []string{dirEmbryo, dirPrepare, dirPrepared, dirRun, dirExitedGarbage, dirGarbage}

// stateOf gives the state of a pod found in dir with its lock held or not.
func stateOf(dir string, locked bool) State {
	switch dir {
	case dirEmbryo:
		return Embryo
	case dirPrepare:
		if locked {
			return Preparing
		}
		return AbortedPrepare
	case dirPrepared:
		return Prepared
	case dirRun:
		if locked {
			return Running
		}
		return Exited
	case dirExitedGarbage:
		if locked {
			return ExitedDeleting
		}
		return ExitedGarbage
	}
	if locked {
		return Deleting
	}
	return Garbage
}

// lockMeaningful reports whether the lock on a pod in dir is part of its
// state (an embryo is locked by its creator, a prepared pod by nobody).
func lockMeaningful(dir string) bool {
	return dir != dirEmbryo && dir != dirPrepared
}

// PodsDir is <dataDir>/pods.
func PodsDir(dataDir string) string {
	return filepath.Join(dataDir, "pods")
}

type lockMode int

const (
	unlocked lockMode = iota
	sharedLock
	exclusiveLock
)

// Pod is one pod directory, held open.
type Pod struct {
	UUID types.UUID

	dataDir string
	dir     string // state directory the pod was in when last looked at
	state   State
	fd      int // the pod directory, O_RDONLY|O_DIRECTORY|O_CLOEXEC; -1 once closed
	lock    lockMode
	upper   string // see stage1Upper
	path    string // Path for pathDir, kept: list calls Path for every file
	pathDir string
}

// Path is the pod directory as of the last state change or Refresh.
func (p *Pod) Path() string {
	if p.path == "" || p.pathDir != p.dir {
		p.path, p.pathDir = filepath.Join(PodsDir(p.dataDir), p.dir, p.UUID.String()), p.dir
	}
	return p.path
}

// State is the pod's state as of the last state change or Refresh.
func (p *Pod) State() State { return p.state }

// LockFD is the descriptor of the pod directory, the one whose flock gives
// the state. stage0 clears its FD_CLOEXEC and hands it to stage1 as
// RKT_LOCK_FD. It is -1 after Close.
func (p *Pod) LockFD() int { return p.fd }

// Close releases the pod directory and any lock held through it. It is safe
// to call twice.
func (p *Pod) Close() error {
	if p.fd < 0 {
		return nil
	}
	err := unix.Close(p.fd)
	p.fd = -1
	p.lock = unlocked
	if err != nil {
		return fmt.Errorf("closing pod %s: %w", p.UUID, err)
	}
	return nil
}

// initDirs creates the state directories.
func initDirs(dataDir string) error {
	for _, d := range stateDirs {
		path := filepath.Join(PodsDir(dataDir), d)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := os.MkdirAll(path, 0o750); err != nil {
			return fmt.Errorf("creating pods directory: %w", err)
		}
	}
	// Also on a directory an older rkt (1.30) made: a few microseconds.
	markTopDir(filepath.Join(PodsDir(dataDir), dirEmbryo))
	return nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() (types.UUID, error) {
	var u types.UUID
	if _, err := rand.Read(u[:]); err != nil {
		return u, fmt.Errorf("generating pod UUID: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u, nil
}

// NewPod creates a pod with a new random UUID: it makes
// pods/embryo/<uuid>, locks it exclusively and renames it to
// pods/prepare/<uuid>. The returned pod is "preparing" and stays locked
// until ToPrepared (or Close, which leaves an aborted prepare behind).
func NewPod(dataDir string) (*Pod, error) {
	if err := initDirs(dataDir); err != nil {
		return nil, err
	}
	var p *Pod
	for attempt := 0; ; attempt++ {
		u, err := newUUID()
		if err != nil {
			return nil, err
		}
		p = &Pod{UUID: u, dataDir: dataDir, dir: dirEmbryo, state: Embryo, fd: -1}
		err = os.Mkdir(p.Path(), 0o750)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || attempt == 3 {
			return nil, fmt.Errorf("creating pod directory: %w", err)
		}
	}
	embryo := p.Path()
	fd, err := openDir(embryo)
	if err == nil {
		p.fd = fd
		err = p.TryExclusiveLock()
	}
	if err == nil {
		err = p.move(dirPrepare)
	}
	if err != nil {
		p.Close()
		os.Remove(embryo)
		return nil, fmt.Errorf("creating pod %s: %w", p.UUID, err)
	}
	p.state = Preparing
	return p, nil
}

func openDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// openDirAt opens the directory name in the directory dirFD; the error is
// the bare errno.
func openDirAt(dirFD int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// move renames the pod directory to another state directory.
func (p *Pod) move(toDir string) error {
	from := p.Path()
	to := filepath.Join(PodsDir(p.dataDir), toDir, p.UUID.String())
	if err := os.Rename(from, to); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("moving pod %s from %s to %s: it moved meanwhile: %w", p.UUID, p.dir, toDir, ErrBadState)
		}
		return fmt.Errorf("moving pod %s from %s to %s: %w", p.UUID, p.dir, toDir, err)
	}
	p.dir = toDir
	return nil
}

// lookup opens the pod u wherever it is and works out its state. The state
// directories are tried in lifecycle order, so a pod that moves on while we
// look is still found; after opening, the directory is checked to still be
// where it was found, and the search is repeated when it moved.
func lookup(dataDir string, u types.UUID) (*Pod, error) {
	return lookupFrom(dataDir, u, dirEmbryo, nil)
}

// lookupFrom is lookup starting at state directory from (where a listing
// saw the pod): a pod only moves to later directories, so the earlier ones
// need not be tried. dirFDs, when not nil, holds open state directories
// (List's), so that the pod is looked up by its name in them rather than
// by its whole path.
func lookupFrom(dataDir string, u types.UUID, from string, dirFDs map[string]int) (*Pod, error) {
	name := u.String()
	dirs := stateDirs
	for i, d := range stateDirs {
		if d == from {
			dirs = stateDirs[i:]
		}
	}
	for attempt := 0; attempt < 4; attempt++ {
		moved := false
		for _, d := range dirs {
			dirFD, haveFD := dirFDs[d]
			var fd int
			var err error
			if haveFD {
				if fd, err = openDirAt(dirFD, name); err != nil {
					err = &os.PathError{Op: "open", Path: filepath.Join(PodsDir(dataDir), d, name), Err: err}
				}
			} else {
				fd, err = openDir(filepath.Join(PodsDir(dataDir), d, name))
			}
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
				continue // not there, or a stray file
			}
			if err != nil {
				return nil, fmt.Errorf("opening pod %s: %w", name, err)
			}
			p := &Pod{UUID: u, dataDir: dataDir, dir: d, fd: fd}
			locked, err := p.probeLock()
			if err == nil {
				var still bool
				if haveFD {
					still, err = p.isAtFD(dirFD, d)
				} else {
					still, err = p.isAt(d)
				}
				if err == nil && !still {
					p.Close()
					moved = true
					break
				}
			}
			if err != nil {
				p.Close()
				return nil, err
			}
			p.state = stateOf(d, locked)
			return p, nil
		}
		if !moved {
			break
		}
	}
	return nil, fmt.Errorf("pod %s: %w", name, ErrNotFound)
}

// probeLock reports whether another open file description holds a lock on
// the pod directory, by taking and dropping a shared lock. A lock held
// through p itself counts as held.
func (p *Pod) probeLock() (bool, error) {
	if !lockMeaningful(p.dir) {
		return false, nil
	}
	if p.lock != unlocked {
		return true, nil
	}
	err := flock(p.fd, unix.LOCK_SH|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("probing lock of pod %s: %w", p.UUID, err)
	}
	if err := flock(p.fd, unix.LOCK_UN); err != nil {
		return false, fmt.Errorf("probing lock of pod %s: %w", p.UUID, err)
	}
	return false, nil
}

// isAt reports whether the open pod directory is still pods/<dir>/<uuid>.
func (p *Pod) isAt(dir string) (bool, error) {
	var have, there unix.Stat_t
	if err := unix.Fstat(p.fd, &have); err != nil {
		return false, fmt.Errorf("stat of pod %s: %w", p.UUID, err)
	}
	path := filepath.Join(PodsDir(p.dataDir), dir, p.UUID.String())
	err := unix.Stat(path, &there)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat of %s: %w", path, err)
	}
	return have.Dev == there.Dev && have.Ino == there.Ino, nil
}

// isAtFD is isAt with the state directory dir open as dirFD.
func (p *Pod) isAtFD(dirFD int, dir string) (bool, error) {
	var have, there unix.Stat_t
	if err := unix.Fstat(p.fd, &have); err != nil {
		return false, fmt.Errorf("stat of pod %s: %w", p.UUID, err)
	}
	err := unix.Fstatat(dirFD, p.UUID.String(), &there, 0)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat of pod %s in %s: %w", p.UUID, dir, err)
	}
	return have.Dev == there.Dev && have.Ino == there.Ino, nil
}

// Refresh works out the pod's current state again: other processes may have
// moved it or released its lock since it was loaded. It returns ErrNotFound
// when the pod directory is gone.
func (p *Pod) Refresh() error {
	if p.fd < 0 {
		return fmt.Errorf("refreshing pod %s: closed", p.UUID)
	}
	for attempt := 0; attempt < 4; attempt++ {
		for _, d := range stateDirs {
			at, err := p.isAt(d)
			if err != nil {
				return err
			}
			if !at {
				continue
			}
			p.dir = d
			locked, err := p.probeLock()
			if err != nil {
				return err
			}
			// A move between the stat and the probe changes the meaning
			// of the lock: look again.
			if at, err := p.isAt(d); err != nil {
				return err
			} else if !at {
				break
			}
			p.state = stateOf(d, locked)
			return nil
		}
	}
	return fmt.Errorf("pod %s: %w", p.UUID, ErrNotFound)
}

// statAt stats name inside the pod directory. Its callers only ask whether
// the file is there, so the error is the bare errno (no path is built for
// each of the files list finds missing).
func (p *Pod) statAt(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(p.fd, name, &st, 0)
	return st, err
}

func mtime(st unix.Stat_t) time.Time {
	return time.Unix(st.Mtim.Unix())
}
