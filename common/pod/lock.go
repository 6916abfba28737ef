package pod

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The locks are flock(2) locks on the pod directory's open file description:
// a second Pod for the same directory, even in the same process, contends
// with the first. Converting a held lock (shared <-> exclusive) is not
// atomic: another process may get the lock in between.

func flock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}

func (p *Pod) flock(how int, mode lockMode, what string) error {
	if p.fd < 0 {
		return fmt.Errorf("%s pod %s: closed", what, p.UUID)
	}
	err := flock(p.fd, how)
	if err == unix.EWOULDBLOCK {
		return fmt.Errorf("%s pod %s: %w", what, p.UUID, ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("%s pod %s: %w", what, p.UUID, err)
	}
	p.lock = mode
	return nil
}

// TryExclusiveLock takes the exclusive lock, or fails with ErrLocked.
func (p *Pod) TryExclusiveLock() error {
	return p.flock(unix.LOCK_EX|unix.LOCK_NB, exclusiveLock, "locking")
}

// TrySharedLock takes a shared lock, or fails with ErrLocked when another
// process holds the exclusive lock.
func (p *Pod) TrySharedLock() error {
	return p.flock(unix.LOCK_SH|unix.LOCK_NB, sharedLock, "locking")
}

// Unlock releases the lock held through p.
func (p *Pod) Unlock() error {
	return p.flock(unix.LOCK_UN, unlocked, "unlocking")
}

// Locked reports whether p itself holds a lock (shared or exclusive).
func (p *Pod) Locked() bool { return p.lock != unlocked }
