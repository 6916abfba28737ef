package pod

import (
	"path/filepath"

	"github.com/rktng/rkt/common/stage1"
)

// Names inside a pod directory (pods/<state>/<uuid>). They are part of the
// stage1 contract (common/stage1/CONTRACT.md) and of rkt's on-disk layout.
const (
	ManifestFile    = "pod"         // the pod manifest (JSON)
	CreatedFile     = "pod-created" // empty; its mtime is the creation time
	PIDFile         = "pid"         // pid of the pod's "PID 1", written by stage1
	PPIDFile        = "ppid"        // pid of the parent of the pod's only process
	SubcgroupFile   = "subcgroup"   // the pod's cgroup below each hierarchy's root
	NetInfoFile     = "net-info.json"
	NetNSFile       = "netns"
	Stage1Dir       = "stage1"   // the stage1 image: manifest and rootfs
	AppsInfoDir     = "appsinfo" // appsinfo/<app>/{manifest,treeStoreID}
	OverlayDir      = "overlay"  // overlay/<treeStoreID>/{upper,work}[/<app>]
	Stage1TreeFile  = "stage1TreeStoreID"
	OverlayMarker   = "overlay-prepared" // present when rootfs are overlay mounts
	StartedFile     = "pod-started"      // written by stage0 just before exec'ing stage1
	appImgManifest  = "manifest"
	appTreeStoreID  = "treeStoreID"
	stage1RootfsRel = "stage1/rootfs"
)

// Stage1ManifestPath is the stage1 image manifest of the pod in podDir.
func Stage1ManifestPath(podDir string) string {
	return filepath.Join(podDir, Stage1Dir, "manifest")
}

// Stage1RootfsPath is the stage1 rootfs of the pod in podDir.
func Stage1RootfsPath(podDir string) string {
	return filepath.Join(podDir, stage1RootfsRel)
}

// AppsInfoPath is appsinfo/<app> of the pod in podDir.
func AppsInfoPath(podDir, app string) string {
	return filepath.Join(podDir, AppsInfoDir, app)
}

// AppImageManifestPath is the image manifest of app, copied at prepare time.
func AppImageManifestPath(podDir, app string) string {
	return filepath.Join(AppsInfoPath(podDir, app), appImgManifest)
}

// AppTreeStoreIDPath holds the tree store ID of app's rendered image.
func AppTreeStoreIDPath(podDir, app string) string {
	return filepath.Join(AppsInfoPath(podDir, app), appTreeStoreID)
}

// AppPath is opt/stage2/<app> inside the stage1 rootfs.
func AppPath(podDir, app string) string {
	return filepath.Join(Stage1RootfsPath(podDir), "opt", "stage2", app)
}

// AppRootfsPath is the rootfs of app: opt/stage2/<app>/rootfs.
func AppRootfsPath(podDir, app string) string {
	return filepath.Join(AppPath(podDir, app), "rootfs")
}

// StatusDir is rkt/status inside the stage1 rootfs; <app> in it holds the
// app's decimal exit code once the app has exited.
func StatusDir(podDir string) string {
	return filepath.Join(Stage1RootfsPath(podDir), stage1.StatusDir)
}

// AppStatusPath is rkt/status/<app>.
func AppStatusPath(podDir, app string) string {
	return filepath.Join(StatusDir(podDir), app)
}

// AppEnvPath is rkt/env/<app>: the app's environment, one K=V per line.
func AppEnvPath(podDir, app string) string {
	return filepath.Join(Stage1RootfsPath(podDir), stage1.EnvDir, app)
}

// OverlayUpperPath is the upper dir of app over tree treeID; app "" is the
// stage1's own overlay.
func OverlayUpperPath(podDir, treeID, app string) string {
	return filepath.Join(podDir, OverlayDir, treeID, "upper", app)
}

// OverlayWorkPath is the work dir matching OverlayUpperPath.
func OverlayWorkPath(podDir, treeID, app string) string {
	return filepath.Join(podDir, OverlayDir, treeID, "work", app)
}

// JournalPath is the pod's journal directory, kept in the stage1 rootfs.
func JournalPath(podDir string) string {
	return filepath.Join(Stage1RootfsPath(podDir), "var", "log", "journal")
}

// EmptyVolumePath is where an "empty" volume of the pod lives: inside the
// pod directory, so that gc removes it with the pod.
func EmptyVolumePath(podDir, volume string) string {
	return filepath.Join(Stage1RootfsPath(podDir), "rkt", "volumes", volume)
}
