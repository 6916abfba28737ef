package cli

import "fmt"

// Exit statuses of rkt itself. A pod's own status (the failing app's exit
// code) is passed through unchanged by `rkt run`.
const (
	ExitOK      = 0
	ExitFailure = 254 // rkt's own failure: bad input, fetch failed, no such pod...
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
