package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-multierror"
	"github.com/rktng/rkt/common/stage1"
)

// Exit statuses of rkt itself. A pod's own status (the failing app's exit
// code) is passed through unchanged by `rkt run`.
const (
	ExitOK      = 0
	ExitFailure = stage1.ExitFailure // rkt's own failure: bad input, fetch failed, no such pod...
)

// exitCodeError makes Main return code without printing anything: the
// command has already said what there was to say (e.g. `rkt enter` passing
// the command's status on).
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError marks bad command lines.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// appendErr collects errors of commands that go on past a failure (gc, rm,
// stop of several pods); they print on one line, each naming its object.
func appendErr(errs *multierror.Error, err error) *multierror.Error {
	errs = multierror.Append(errs, err)
	errs.ErrorFormat = func(es []error) string {
		parts := make([]string, len(es))
		for i, e := range es {
			parts[i] = e.Error()
		}
		return strings.Join(parts, "; ")
	}
	return errs
}

// existsError is an output path that exists without --overwrite; it is
// os.ErrExist without repeating "file already exists" after the message.
type existsError struct{ path string }

func (e existsError) Error() string        { return e.path + " already exists (use --overwrite)" }
func (e existsError) Is(target error) bool { return target == os.ErrExist }
