// Package mds is the appc metadata service (`rkt metadata-service`): an HTTP
// server that answers a running pod's apps about their pod (manifest, UUID,
// annotations), their images (manifest, ID) and signs and verifies content
// with a key only the service holds, plus the client side of the
// registration protocol that `rkt run --mds-register` and `rkt gc` use.
//
// Two listeners, two audiences:
//
//   - The metadata listener (TCP, port 18112 on every address by default,
//     as rkt's: pods reach it on the host's side of their own network) is
//     for apps.
//     Every path starts with the pod's token, as appc advises: a pod's
//     AC_METADATA_URL is http://IP:PORT/<token>, and the token (256 random
//     bits, never the UUID) is what selects, and authenticates, the pod.
//     Endpoints live under <token>/acMetadata/v1 and every request must
//     carry "Metadata-Flavor: AppContainer", so that a request an app is
//     tricked into making by someone else (a plain redirect or link) fails.
//   - The registration listener (a unix socket, /run/rkt/metadata-svc.sock,
//     root-only) is for rkt itself: PUT /pods/<uuid> registers a pod and
//     answers its token, DELETE /pods/<uuid> forgets it.
//
// Registrations live in memory, as in rkt: a restarted service knows no
// pods, and pods registered before it answer 401 until they are re-run.
package mds

import (
	"errors"

	"github.com/appc/spec/schema"
	"github.com/rktng/rkt/common/stage1"
)

// Defaults shared by the service and its clients (rkt's values).
const (
	DefaultPort    = stage1.MetadataPort
	DefaultAddress = "" // every address of the host: pods reach it on their network
	DefaultSocket  = "/run/rkt/metadata-svc.sock"
	// FlavorHeader must be FlavorValue on every metadata request.
	FlavorHeader = "Metadata-Flavor"
	FlavorValue  = "AppContainer"
	// PathPrefix follows the token in every metadata URL path.
	PathPrefix = "/acMetadata/v1"
)

// Error categories, for errors.Is.
var (
	// ErrNotRunning: nothing answers on the registration socket.
	ErrNotRunning = errors.New("metadata service is not running")
	// ErrNotRegistered: the service does not know the pod.
	ErrNotRegistered = errors.New("pod is not registered with the metadata service")
	// ErrRejected: the service refused a registration (bad or duplicate).
	ErrRejected = errors.New("metadata service refused the registration")
)

// Registration is what rkt tells the service about a pod before starting it.
type Registration struct {
	UUID     string              `json:"uuid"`
	Manifest *schema.PodManifest `json:"manifest"`
	// Apps has one entry per app of Manifest, no more, no less.
	Apps []AppImage `json:"apps"`
	// IP, when set, is the only address the pod's token is accepted from.
	IP string `json:"ip,omitempty"`
}

// AppImage is one app's image as the pod runs it.
type AppImage struct {
	Name     string                `json:"name"`
	Manifest *schema.ImageManifest `json:"manifest"`
	// ImageID is the image's ID (sha512-...); empty means the pod
	// manifest's image ID for the app, which it must equal when set.
	ImageID string `json:"imageID,omitempty"`
}

// registered is the registration endpoint's answer.
type registered struct {
	Token string `json:"token"`
}
