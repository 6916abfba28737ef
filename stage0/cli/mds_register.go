package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/appc/spec/schema"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/stage0/mds"
)

// mdsSocketEnv overrides the metadata service's registration socket, for
// both the service and the rkt that registers pods with it: tests (and a
// second service on one host) keep off /run/rkt with it.
const mdsSocketEnv = "RKT_METADATA_SOCKET"

func mdsSocketPath() string {
	if p := os.Getenv(mdsSocketEnv); p != "" {
		return p
	}
	return mds.DefaultSocket
}

// mdsRegister registers the pod p (prepared, about to run) with the
// metadata service and returns the token to pass to stage1 as --mds-token.
// It reads what the service answers apps from the pod directory: the pod
// manifest and each app's image manifest in appsinfo/<app>/manifest; the
// image IDs are the pod manifest's.
func mdsRegister(g *globals, p *pod.Pod) (token string, err error) {
	pm, _, err := p.Manifest()
	if err != nil {
		return "", fmt.Errorf("registering pod %s with the metadata service: %w", p.UUID, err)
	}
	reg := mds.Registration{UUID: p.UUID.String(), Manifest: pm}
	for _, ra := range pm.Apps {
		path := pod.AppImageManifestPath(p.Path(), ra.Name.String())
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("registering pod %s with the metadata service: image manifest of app %s: %w", p.UUID, ra.Name, err)
		}
		im := &schema.ImageManifest{}
		if err := im.UnmarshalJSON(b); err != nil {
			return "", fmt.Errorf("registering pod %s with the metadata service: image manifest of app %s (%s): %w", p.UUID, ra.Name, path, err)
		}
		reg.Apps = append(reg.Apps, mds.AppImage{Name: ra.Name.String(), Manifest: im, ImageID: ra.Image.ID.String()})
	}
	token, err = mds.Register(mdsSocketPath(), reg)
	if err != nil {
		return "", err
	}
	g.debugf("registered pod %s with the metadata service at %s", p.UUID, mdsSocketPath())
	return token, nil
}

// mdsUnregister makes the metadata service forget the pod uuid, so that
// its token stops working once the pod is gone. It is called for every pod
// gc deletes: most were never registered, or no service runs, and that is
// no error; anything else is a warning, not a reason to keep the pod.
func mdsUnregister(g *globals, uuid string) {
	err := mds.Unregister(mdsSocketPath(), uuid)
	switch {
	case err == nil:
		g.debugf("unregistered pod %s from the metadata service", uuid)
	case errors.Is(err, mds.ErrNotRunning), errors.Is(err, mds.ErrNotRegistered):
	default:
		g.warnf("%v", err)
	}
}
