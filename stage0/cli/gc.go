package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/cobra"

	"github.com/rktng/rkt/common/mountinfo"
	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage0/launch"
)

type gcFlags struct {
	GracePeriod    time.Duration
	ExpirePrepared time.Duration
	MarkOnly       bool
}

func newGCCommand(g *globals) *cobra.Command {
	var f gcFlags
	cmd := &cobra.Command{
		Use:   "gc [--grace-period=duration] [--expire-prepared=duration] [--mark-only]",
		Short: "Garbage collect rkt pods no longer in use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGC(g, f)
		},
	}
	cmd.Flags().DurationVar(&f.GracePeriod, "grace-period", 30*time.Minute, "duration to wait before discarding inactive pods from garbage")
	cmd.Flags().DurationVar(&f.ExpirePrepared, "expire-prepared", 24*time.Hour, "duration to wait before expiring prepared pods")
	cmd.Flags().BoolVar(&f.MarkOnly, "mark-only", false, "move to the garbage directories without actually deleting")
	return cmd
}

// runGC marks exited pods, expired prepared pods and aborted prepares as
// garbage, then deletes the garbage older than the grace period.
func runGC(g *globals, f gcFlags) error {
	pods, err := pod.List(g.Dir)
	if err != nil {
		return fmt.Errorf("listing pods in %s: %w", g.Dir, err)
	}
	var errs *multierror.Error
	now := time.Now()
	for _, p := range pods {
		if err := gcMark(g, p, f, now); err != nil && !errors.Is(err, pod.ErrLocked) {
			errs = appendErr(errs, err)
		}
		p.Close()
	}
	if f.MarkOnly {
		return errs.ErrorOrNil()
	}
	pods, err = pod.List(g.Dir)
	if err != nil {
		return fmt.Errorf("listing pods in %s: %w", g.Dir, err)
	}
	for _, p := range pods {
		st := p.State()
		if (st == pod.ExitedGarbage || st == pod.Garbage) && time.Since(p.GCMarkTime()) >= f.GracePeriod {
			if err := deletePod(g, p); err != nil {
				errs = appendErr(errs, err)
			} else {
				fmt.Fprintf(g.stdout, "Garbage collecting pod %q\n", p.UUID.String())
			}
		}
		p.Close()
	}
	return errs.ErrorOrNil()
}

const embryoGrace = time.Minute

func gcMark(g *globals, p *pod.Pod, f gcFlags, now time.Time) error {
	switch p.State() {
	case pod.Exited:
		g.debugf("moving exited pod %s to garbage", p.UUID)
		return p.ToExitedGarbage()
	case pod.Embryo:
		// A fresh embryo belongs to an rkt that is creating its pod right
		// now: only old ones are debris.
		if now.Sub(p.GCMarkTime()) < embryoGrace {
			return nil
		}
		return p.ToGarbage()
	case pod.AbortedPrepare:
		g.debugf("moving aborted prepare %s to garbage", p.UUID)
		return p.ToGarbage()
	case pod.Prepared:
		if now.Sub(p.CreatedAt()) >= f.ExpirePrepared {
			g.debugf("moving expired prepared pod %s to garbage", p.UUID)
			return p.ToGarbage()
		}
	}
	return nil
}

// deletePod removes a garbage pod: it takes the pod's lock (skipping pods
// someone else is deleting), lets the stage1 release what it holds,
// unmounts everything below the pod directory and removes it. The unmount
// must succeed before anything is removed: a volume still bound in would
// otherwise have its host files deleted.
func deletePod(g *globals, p *pod.Pod) error {
	if err := p.TryExclusiveLock(); err != nil {
		if errors.Is(err, pod.ErrLocked) {
			g.debugf("pod %s is being deleted by another process", p.UUID)
			return nil
		}
		return fmt.Errorf("locking pod %s: %w", p.UUID, err)
	}
	dir := p.Path()
	if p.State() == pod.ExitedGarbage || p.State() == pod.Deleting {
		if _, err := os.Stat(pod.Stage1ManifestPath(dir)); err == nil {
			if err := launch.CallGC(dir, p.UUID.String(), g.LocalConfig, g.Debug); err != nil {
				g.warnf("stage1 gc of pod %s: %v", p.UUID, err)
			}
		}
	}
	mdsUnregister(g, p.UUID.String())
	if err := mountinfo.UnmountUnder(dir); err != nil {
		return fmt.Errorf("deleting pod %s: %w", p.UUID, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("deleting pod %s: %w", p.UUID, err)
	}
	return nil
}
