package cli

import (
	"errors"
	"os"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage0/launch"
)

// mountStage1ForGC mounts the stage1 rootfs of an exited pod whose overlay
// is gone (a reboot since, or a pod rkt 1.30 left): its gc entrypoint lives
// there. rkt 1.30's gc did the same. The mount goes with the pod's others
// when the pod directory is unmounted.
func mountStage1ForGC(g *globals, dir string) error {
	ep, _, err := launch.Entrypoint(dir, stage1.AnnGC)
	if err != nil {
		return nil // no gc entrypoint: CallGC has nothing to run
	}
	if _, err := os.Stat(ep); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(dir + "/" + pod.OverlayMarker); err != nil {
		return nil
	}
	st, err := g.openStore()
	if err != nil {
		return err
	}
	_, err = launch.EnsureMounted(dir, st.TreeRootfs, nil)
	return err
}
