package pod

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

func (p *Pod) badState(to State) error {
	return fmt.Errorf("pod %s is %s, cannot become %s: %w", p.UUID, p.state, to, ErrBadState)
}

// ToPrepared moves a preparing pod (created by NewPod, so locked by us) to
// prepared/ and releases its lock.
func (p *Pod) ToPrepared() error {
	if p.state != Preparing || p.lock != exclusiveLock {
		return p.badState(Prepared)
	}
	if err := p.move(dirPrepared); err != nil {
		return err
	}
	p.state = Prepared
	return p.Unlock()
}

// ToRun takes the exclusive lock (ErrLocked when another process holds it)
// and moves a prepared pod to run/, keeping the lock: the pod is "running"
// for as long as the lock is held, by us or by the stage1 we hand LockFD to.
// A pod we are preparing (NewPod) may go straight to run, as in `rkt run`.
func (p *Pod) ToRun() error {
	switch {
	case p.state == Prepared:
	case p.state == Preparing && p.lock == exclusiveLock:
	default:
		return p.badState(Running)
	}
	took := p.lock != exclusiveLock
	if took {
		if err := p.TryExclusiveLock(); err != nil {
			return err
		}
	}
	if err := p.move(dirRun); err != nil {
		if took {
			p.Unlock()
		}
		return err
	}
	p.state = Running
	return nil
}

// ToExitedGarbage marks an exited pod for gc: run/ -> exited-garbage/. The
// pod must not be running: unless we hold its exclusive lock already (then
// we keep it, and the pod is "exited deleting"), the lock is taken for the
// move and released, and a lock held elsewhere means the pod still runs
// (ErrLocked). The rename makes the directory's ctime the mark time.
func (p *Pod) ToExitedGarbage() error {
	if p.state != Exited && !(p.state == Running && p.lock == exclusiveLock) {
		return p.badState(ExitedGarbage)
	}
	return p.toGarbageDir(dirExitedGarbage, ExitedGarbage, ExitedDeleting)
}

// ToGarbage marks a pod that never ran for gc: a prepared pod, an aborted
// prepare, a stale embryo, or a pod we are preparing ourselves ->
// garbage/. Locking is as for ToExitedGarbage; ErrLocked means someone is
// preparing or starting the pod right now.
func (p *Pod) ToGarbage() error {
	switch {
	case p.state == Prepared, p.state == AbortedPrepare, p.state == Embryo:
	case p.state == Preparing && p.lock == exclusiveLock:
	default:
		return p.badState(Garbage)
	}
	return p.toGarbageDir(dirGarbage, Garbage, Deleting)
}

func (p *Pod) toGarbageDir(dir string, unlockedState, lockedState State) error {
	// A shared lock is enough to know that nobody runs, prepares or
	// deletes the pod, and unlike an exclusive one it does not make the pod
	// look "deleting" to others while we move it.
	took := p.lock == unlocked
	if took {
		if err := p.TrySharedLock(); err != nil {
			return err
		}
	}
	from := p.dir
	// Make sure the pod did not move on between our look and the lock
	// (a concurrent gc, or a run that already ended).
	at, err := p.isAt(from)
	if err == nil && !at {
		err = fmt.Errorf("pod %s left %s meanwhile: %w", p.UUID, from, ErrBadState)
	}
	if err == nil {
		err = p.move(dir)
	}
	if err == nil {
		err = p.touchCtime()
	}
	if err != nil {
		if took {
			p.Unlock()
		}
		return err
	}
	switch {
	case took:
		p.state = unlockedState
		return p.Unlock()
	case p.lock == exclusiveLock:
		p.state = lockedState
	default:
		p.state = unlockedState
	}
	return nil
}

// touchCtime sets the pod directory's ctime to now. rename(2) does so on
// the common filesystems, but gc's grace period must not depend on that.
func (p *Pod) touchCtime() error {
	var st unix.Stat_t
	if err := unix.Fstat(p.fd, &st); err != nil {
		return fmt.Errorf("marking pod %s: %w", p.UUID, err)
	}
	if err := unix.Fchmod(p.fd, st.Mode&0o7777); err != nil && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("marking pod %s: %w", p.UUID, err)
	}
	return nil
}
