package cli

import (
	"errors"
	"fmt"
	"os"
	"runtime"
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
// garbage, then deletes the garbage older than the grace period. The pods
// are listed once; the deletions run in parallel and share their reads of
// the mount table (see deletePods), so that gc costs the same per pod
// whether there are ten pods or thousands.
func runGC(g *globals, f gcFlags) error {
	pods, err := pod.List(g.Dir)
	if err != nil {
		return fmt.Errorf("listing pods in %s: %w", g.Dir, err)
	}
	defer func() {
		for _, p := range pods {
			p.Close()
		}
	}()
	var errs *multierror.Error
	now := time.Now()
	for _, p := range pods {
		if err := gcMark(g, p, f, now); err != nil && !errors.Is(err, pod.ErrLocked) {
			errs = appendErr(errs, err)
		}
	}
	if f.MarkOnly {
		return errs.ErrorOrNil()
	}
	var garbage []*pod.Pod
	for _, p := range pods {
		// Pods marked by another gc meanwhile wait for the next one.
		st := p.State()
		switch {
		case st != pod.ExitedGarbage && st != pod.Garbage:
		case time.Since(p.GCMarkTime()) < f.GracePeriod:
			g.gcSay("pod %q not removed: still within grace period (%s)", p.UUID.String(), f.GracePeriod)
		default:
			garbage = append(garbage, p)
		}
	}
	deleted, derrs := deletePods(g, garbage)
	for _, p := range deleted {
		fmt.Fprintf(g.stdout, "Garbage collecting pod %q\n", p.UUID.String())
	}
	for _, err := range derrs {
		errs = appendErr(errs, err)
	}
	return errs.ErrorOrNil()
}

const embryoGrace = time.Minute

// gcSay prints what gc marks, on stderr as rkt did.
func (g *globals) gcSay(format string, args ...any) {
	fmt.Fprintf(g.stderr, "rkt gc: "+format+"\n", args...)
}

func gcMark(g *globals, p *pod.Pod, f gcFlags, now time.Time) error {
	switch p.State() {
	case pod.Exited:
		g.gcSay("moving pod %q to garbage", p.UUID.String())
		return p.ToExitedGarbage()
	case pod.Embryo:
		// A fresh embryo belongs to an rkt that is creating its pod right
		// now: only old ones are debris.
		if now.Sub(p.GCMarkTime()) < embryoGrace {
			return nil
		}
		return p.ToGarbage()
	case pod.AbortedPrepare:
		g.gcSay("moving failed prepare %q to garbage", p.UUID.String())
		return p.ToGarbage()
	case pod.Prepared:
		if now.Sub(p.CreatedAt()) >= f.ExpirePrepared {
			g.gcSay("moving expired prepared pod %q to garbage", p.UUID.String())
			return p.ToGarbage()
		}
	}
	return nil
}

// deletePod removes one garbage pod (rm): see deletePods.
func deletePod(g *globals, p *pod.Pod) error {
	if _, errs := deletePods(g, []*pod.Pod{p}); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// deletePods removes garbage pods: it takes each pod's lock (skipping pods
// someone else is deleting), lets the stage1 release what it holds,
// unmounts everything below the pod directories and removes them. A pod's
// unmount must succeed before anything of it is removed: a volume still
// bound in would otherwise have its host files deleted. The stage1 calls
// and removals run in parallel; the unmounts of all the pods go through
// one read of the mount table per round (mountinfo.UnmountUnderEach), as
// reading it costs in proportion to the mounts, which grow with the pods.
// It returns the pods deleted and the errors.
func deletePods(g *globals, pods []*pod.Pod) ([]*pod.Pod, []error) {
	errs := make([]error, len(pods))
	locked := make([]bool, len(pods))
	// Before a stage1's gc or our unmounts: nothing unmounted under a pod
	// may propagate to the host (rkt 1.30's fly left shared binds of /sys).
	all := make([]string, len(pods))
	for i, p := range pods {
		all[i] = p.Path()
	}
	if err := mountinfo.PrivateUnderEach(all); err != nil {
		g.warnf("making the pods' mounts private: %v", err)
	}
	// Mostly waiting for the stage1 gc processes: more workers than CPUs.
	pod.ParallelN(len(pods), 4*runtime.GOMAXPROCS(0), func(i int) {
		p := pods[i]
		if err := p.TryExclusiveLock(); err != nil {
			if errors.Is(err, pod.ErrLocked) {
				g.debugf("pod %s is being deleted by another process", p.UUID)
			} else {
				errs[i] = fmt.Errorf("locking pod %s: %w", p.UUID, err)
			}
			return
		}
		locked[i] = true
		dir := p.Path()
		if p.State() == pod.ExitedGarbage || p.State() == pod.Deleting {
			if _, err := os.Stat(pod.Stage1ManifestPath(dir)); err == nil {
				if err := mountStage1ForGC(g, dir); err != nil {
					g.warnf("mounting the stage1 of pod %s for its gc: %v", p.UUID, err)
				}
				if err := launch.CallGC(dir, p.UUID.String(), g.LocalConfig, g.Debug, g.stderr); err != nil {
					g.warnf("stage1 gc of pod %s: %v", p.UUID, err)
				}
			}
		}
		mdsUnregister(g, p.UUID.String())
	})
	g.debugf("gc: %d pods locked, their stage1 gc run", len(pods))
	var idx []int
	var dirs []string
	for i, p := range pods {
		if locked[i] {
			idx = append(idx, i)
			dirs = append(dirs, p.Path())
		}
	}
	for k, err := range mountinfo.UnmountUnderEach(dirs) {
		if err != nil {
			errs[idx[k]] = fmt.Errorf("deleting pod %s: %w", pods[idx[k]].UUID, err)
			locked[idx[k]] = false
		}
	}
	g.debugf("gc: %d pods unmounted", len(idx))
	// Removing waits on the disk (an ext4 mounted with discard and no
	// journal discards each freed extent synchronously, ~1 ms each, some 25
	// per pod): many more workers than CPUs, so that the waits overlap.
	pod.ParallelN(len(idx), 4*runtime.GOMAXPROCS(0), func(k int) {
		i := idx[k]
		if !locked[i] {
			return
		}
		if err := os.RemoveAll(dirs[k]); err != nil {
			errs[i] = fmt.Errorf("deleting pod %s: %w", pods[i].UUID, err)
			locked[i] = false
			return
		}
		// The directory's inode (and its disk blocks, with their
		// discards) is freed only when its last descriptor, ours, is
		// closed: close it here, in parallel, not one by one later.
		pods[i].Close()
	})
	g.debugf("gc: pod directories removed")
	var deleted []*pod.Pod
	var out []error
	for i, p := range pods {
		if locked[i] {
			deleted = append(deleted, p)
		}
		if errs[i] != nil {
			out = append(out, errs[i])
		}
	}
	return deleted, out
}
