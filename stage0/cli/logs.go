package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/common/pod"
)

func init() {
	extraCommands = append(extraCommands, newLogsCommand)
}

type logsFlags struct {
	App    string
	Follow bool
	Lines  int
}

// newLogsCommand is beyond rkt 1.30: rkt left users to find the journal
// (`journalctl -M`, which needs machined, and nothing after exit).
func newLogsCommand(g *globals) *cobra.Command {
	var f logsFlags
	cmd := &cobra.Command{
		Use:   "logs [--app=NAME] [-f] UUID",
		Short: "Print the logs of a pod's apps, while it runs and after it exits (until gc)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogs(g, f, args[0])
		},
	}
	cmd.Flags().StringVar(&f.App, "app", "", "only this app's logs")
	cmd.Flags().BoolVarP(&f.Follow, "follow", "f", false, "keep printing new entries")
	cmd.Flags().IntVarP(&f.Lines, "lines", "n", 0, "only the last N entries")
	return cmd
}

// runLogs reads the pod's own journal directory with journalctl: the
// journal stays in the pod directory, so no machined is needed and the
// logs outlive the pod.
func runLogs(g *globals, f logsFlags, uuid string) error {
	p, err := g.loadPod(uuid, "")
	if err != nil {
		return err
	}
	defer p.Close()
	pm, _, err := p.Manifest()
	if err != nil {
		return fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	if f.App != "" && pm.Apps.Get(acName(f.App)) == nil {
		return fmt.Errorf("pod %s has no app %q: %w", p.UUID, f.App, pod.ErrNotFound)
	}
	dir := pod.JournalPath(p.Path())
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("pod %s keeps no journal (its stage1 logs elsewhere, e.g. fly writes to rkt's own stdout): %w", p.UUID, err)
	}
	journalctl, err := exec.LookPath("journalctl")
	if err != nil {
		return fmt.Errorf("reading the logs of pod %s: journalctl not found (apt-get install systemd): %w", p.UUID, err)
	}
	args := []string{"journalctl", "--directory=" + dir, "--no-pager", "--output=short-precise"}
	if f.App != "" {
		args = append(args, "--identifier="+f.App)
	} else {
		for _, a := range pm.Apps {
			args = append(args, "--identifier="+a.Name.String())
		}
	}
	if f.Follow {
		args = append(args, "--follow")
	}
	if f.Lines > 0 {
		args = append(args, fmt.Sprintf("--lines=%d", f.Lines))
	}
	c := exec.Command(journalctl, args[1:]...)
	c.Stdout, c.Stderr = g.stdout, g.stderr
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil // interrupted while following
		}
		return fmt.Errorf("journalctl for pod %s: %w", p.UUID, err)
	}
	return err
}
