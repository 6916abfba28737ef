package cli

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/rktng/rkt/common/libexec"
)

// fetchingBinary is rkt built with the fetchers (without -tags nofetch),
// found by common/libexec.
const fetchingBinary = "rkt-fetch"

// handOverError is returned, in rkt's binary without fetchers, by what
// only rkt-fetch can do. It is returned before the command changed
// anything that running it again would find changed (images it imported
// meanwhile are found in the store), and Main then execs rkt-fetch with
// the same arguments in the same process: the pid, the file descriptors
// and the environment stay the caller's.
type handOverError struct{ what string }

func (e *handOverError) Error() string {
	return e.what + " needs " + fetchingBinary
}

// handOver execs rkt-fetch with args (Main's). It returns only when that
// fails.
func handOver(g *globals, h *handOverError, args []string) error {
	p, err := libexec.Find(fetchingBinary)
	if err != nil {
		return fmt.Errorf("%v (rkt's fetchers and trust store; reinstall rkt): %w", h, err)
	}
	g.debugf("%s: handing over to %s", h.what, p)
	err = unix.Exec(p, append([]string{p}, args...), os.Environ())
	return fmt.Errorf("%v: exec %s: %w", h, p, err)
}

// asHandOver reports the hand-over err asks for, if any.
func asHandOver(err error) (*handOverError, bool) {
	var h *handOverError
	return h, errors.As(err, &h)
}
