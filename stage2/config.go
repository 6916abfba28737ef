package stage2

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rktng/rkt/common/stage1"
	"github.com/rktng/rkt/stage2/isolators"
)

// ConfigDir is where the stage1 writes one App per app, relative to the
// root the helper runs in (the stage1 rootfs).
const ConfigDir = "/rkt/stage2"

// DefaultPath is appc's PATH for apps whose image does not set one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Exit statuses of the helper when it fails before the app runs. They are
// systemd's numbers for the same failures, so that a status read without the
// log still means what it meant under rkt.
const (
	ExitChdir  = 200
	ExitGroup  = 216
	ExitUser   = 217
	ExitExec   = 203
	ExitConfig = stage1.ExitFailure
)

// ErrNotFound is wrapped when an executable or working directory does not
// exist in the app's rootfs.
var ErrNotFound = errors.New("not found in the app's rootfs")

// App is everything the helper needs to start one app. All paths except
// Root are inside the app's rootfs.
type App struct {
	Name string `json:"name"`
	// Root is the app's rootfs as seen inside the pod.
	Root string   `json:"root"`
	Exec []string `json:"exec"`
	// WorkingDirectory defaults to "/".
	WorkingDirectory  string   `json:"workingDirectory,omitempty"`
	UID               int      `json:"uid"`
	GID               int      `json:"gid"`
	SupplementaryGIDs []int    `json:"supplementaryGIDs,omitempty"`
	Environment       []string `json:"environment"`
	// PreStart and PostStop are the app's event handlers, run with the
	// app's root, credentials and environment.
	PreStart [][]string `json:"preStart,omitempty"`
	PostStop [][]string `json:"postStop,omitempty"`
	// Notify passes NOTIFY_SOCKET through to the app (the image declared
	// appc.io/executor/supports-systemd-notify).
	Notify bool `json:"notify,omitempty"`
	// ReadOnlyRootFS makes the app's rootfs read-only once prepared.
	ReadOnlyRootFS bool `json:"readOnlyRootFS,omitempty"`
	// Confinement is applied to the app and to every `rkt enter` into it;
	// nil confines nothing (an old config).
	Confinement *isolators.Confinement `json:"confinement,omitempty"`
	// CgroupDirs are the app's cgroups in the v1 hierarchies, made and
	// limited by the stage1 on the host and bound writable into the pod
	// (paths in the stage1 root): the helper moves itself there first.
	CgroupDirs []string `json:"cgroupDirs,omitempty"`
	// DisablePaths leaves /proc unmasked and /sys writable
	// (--insecure-options=paths).
	DisablePaths bool `json:"disablePaths,omitempty"`
}

// ConfigPath is the file holding app's App, relative to the stage1 root.
func ConfigPath(app string) string {
	return filepath.Join(ConfigDir, app+".json")
}

// Load reads an App written by Save.
func Load(path string) (*App, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading app config %s: %w", path, err)
	}
	var a App
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("parsing app config %s: %w", path, err)
	}
	if a.Name == "" || a.Root == "" {
		return nil, fmt.Errorf("app config %s: name and root are required", path)
	}
	return &a, nil
}

// Save writes a to path, creating its directory.
func (a *App) Save(path string) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding app config %s: %w", a.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing app config %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing app config %s: %w", path, err)
	}
	return nil
}

// Getenv returns the value of key in the app's environment.
func (a *App) Getenv(key string) (string, bool) {
	for _, kv := range a.Environment {
		if len(kv) > len(key) && kv[len(key)] == '=' && kv[:len(key)] == key {
			return kv[len(key)+1:], true
		}
	}
	return "", false
}
