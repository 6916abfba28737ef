package mds

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"sync"

	"github.com/appc/spec/schema/types"
)

// podEntry is a registered pod with every answer precomputed, so that
// requests only read immutable data and a bad manifest is refused at
// registration rather than discovered by an app.
type podEntry struct {
	uuid         types.UUID
	token        string
	ip           net.IP // nil: any address
	manifestJSON []byte
	annotations  types.Annotations
	annotsJSON   []byte
	apps         map[string]*appEntry
}

type appEntry struct {
	manifestJSON []byte
	imageID      string
	annotations  types.Annotations // image's, overridden by the pod manifest's
	annotsJSON   []byte
}

// registry maps tokens and UUIDs to pods. Safe for concurrent use.
type registry struct {
	mu      sync.RWMutex
	byToken map[string]*podEntry
	byUUID  map[types.UUID]*podEntry
}

func newRegistry() *registry {
	return &registry{byToken: map[string]*podEntry{}, byUUID: map[types.UUID]*podEntry{}}
}

// newToken returns 256 random bits, URL-safe: more than the 128 appc asks.
func newToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// compile checks reg and turns it into a podEntry without a token.
func compile(reg Registration) (*podEntry, error) {
	u, err := types.NewUUID(reg.UUID)
	if err != nil {
		return nil, fmt.Errorf("pod UUID %q: %v", reg.UUID, err)
	}
	pm := reg.Manifest
	if pm == nil {
		return nil, fmt.Errorf("pod %s: no pod manifest", u)
	}
	e := &podEntry{uuid: *u, apps: map[string]*appEntry{}}
	if reg.IP != "" {
		if e.ip = net.ParseIP(reg.IP); e.ip == nil {
			return nil, fmt.Errorf("pod %s: IP %q is not an address", u, reg.IP)
		}
	}
	if e.manifestJSON, err = json.Marshal(pm); err != nil {
		return nil, fmt.Errorf("pod %s: pod manifest: %v", u, err)
	}
	e.annotations = pm.Annotations
	if e.annotsJSON, err = json.Marshal(pm.Annotations); err != nil {
		return nil, fmt.Errorf("pod %s: annotations: %v", u, err)
	}
	for _, a := range reg.Apps {
		ra := pm.Apps.Get(types.ACName(a.Name))
		if ra == nil {
			return nil, fmt.Errorf("pod %s: app %q is not in the pod manifest", u, a.Name)
		}
		if _, dup := e.apps[a.Name]; dup {
			return nil, fmt.Errorf("pod %s: app %s registered twice", u, a.Name)
		}
		if a.Manifest == nil {
			return nil, fmt.Errorf("pod %s: app %s: no image manifest", u, a.Name)
		}
		ae := &appEntry{imageID: ra.Image.ID.String()}
		if a.ImageID != "" {
			if _, err := types.NewHash(a.ImageID); err != nil {
				return nil, fmt.Errorf("pod %s: app %s: image ID %q: %v", u, a.Name, a.ImageID, err)
			}
			// The pod manifest is what apps compare with (the ACE
			// validator does), so the two must agree.
			if !ra.Image.ID.Empty() && a.ImageID != ae.imageID {
				return nil, fmt.Errorf("pod %s: app %s: image ID %s differs from the pod manifest's %s", u, a.Name, a.ImageID, ae.imageID)
			}
			ae.imageID = a.ImageID
		}
		if ae.imageID == "" {
			return nil, fmt.Errorf("pod %s: app %s: no image ID", u, a.Name)
		}
		if ae.manifestJSON, err = json.Marshal(a.Manifest); err != nil {
			return nil, fmt.Errorf("pod %s: app %s: image manifest: %v", u, a.Name, err)
		}
		ae.annotations = mergeAnnotations(a.Manifest.Annotations, ra.Annotations)
		if ae.annotsJSON, err = json.Marshal(ae.annotations); err != nil {
			return nil, fmt.Errorf("pod %s: app %s: annotations: %v", u, a.Name, err)
		}
		e.apps[a.Name] = ae
	}
	for _, ra := range pm.Apps {
		if _, ok := e.apps[ra.Name.String()]; !ok {
			return nil, fmt.Errorf("pod %s: app %s has no image registered", u, ra.Name)
		}
	}
	return e, nil
}

// mergeAnnotations is the image's annotations, in their order, with the pod
// manifest's app annotations replacing or following them: the order appc's
// ACE validator expects.
func mergeAnnotations(image, app types.Annotations) types.Annotations {
	var out types.Annotations
	for _, a := range image {
		out.Set(a.Name, a.Value)
	}
	for _, a := range app {
		out.Set(a.Name, a.Value)
	}
	return out
}

// add registers e under a new token and returns the token.
func (r *registry) add(e *podEntry) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byUUID[e.uuid]; ok {
		return "", fmt.Errorf("pod %s is already registered", e.uuid)
	}
	e.token = newToken()
	r.byToken[e.token] = e
	r.byUUID[e.uuid] = e
	return e.token, nil
}

func (r *registry) remove(u types.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byUUID[u]
	if ok {
		delete(r.byUUID, u)
		delete(r.byToken, e.token)
	}
	return ok
}

// lookup finds the pod of token, nil if none. The map lookup is not
// constant-time, but a token is 256 random bits: timing reveals nothing
// an attacker could use to guess one.
func (r *registry) lookup(token string) *podEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byToken[token]
}

func (r *registry) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byUUID)
}
