package boot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/rktng/rkt/common/pod"
	"github.com/rktng/rkt/common/stage1"
)

// The rule between the host's systemd-nspawn and the systemd inside a
// stage1-host image (README, "The default stage1 and the host's systemd"):
//
//   - nspawn older than MinNspawnVersion is refused: the command line built
//     here uses --console= (systemd 242);
//   - --private-users with nspawn older than MinNspawnPrivateUsersVersion
//     is refused: it needs --private-users-ownership= (systemd 249);
//   - nspawn older than the systemd the image was built from (its
//     systemd-version annotation) is warned about: the pod's systemd may
//     expect more of its container manager than that nspawn provides.
const (
	MinNspawnVersion             = 242
	MinNspawnPrivateUsersVersion = 249
)

// ErrNspawnTooOld is wrapped when the host's systemd-nspawn cannot run the
// pod.
var ErrNspawnTooOld = errors.New("systemd-nspawn too old")

// checkNspawn applies the rule above to the nspawn at path, for the pod in
// podDir, writing a warning to warn when one is due. The nspawn's version
// is remembered in rkt's data dir (nspawncache.go).
func checkNspawn(path, podDir string, privateUsers bool, warn io.Writer) error {
	host, err := cachedNspawnVersion(path, nspawnCacheDir(podDir))
	if err != nil {
		return err
	}
	image, err := imageSystemdVersion(podDir)
	if err != nil {
		return err
	}
	return nspawnRule(host, image, privateUsers, warn)
}

// nspawnRule is the rule itself: host is the nspawn's major version,
// image the image's systemd (0 when the image does not say).
func nspawnRule(host, image int, privateUsers bool, warn io.Writer) error {
	if host < MinNspawnVersion {
		return fmt.Errorf("%w: the host's systemd-nspawn is version %d, stage1-host needs %d or newer (upgrade systemd-container, or use --stage1-name=coreos.com/rkt/stage1-fly)", ErrNspawnTooOld, host, MinNspawnVersion)
	}
	if privateUsers && host < MinNspawnPrivateUsersVersion {
		return fmt.Errorf("%w: --private-users needs systemd-nspawn %d or newer, the host's is version %d", ErrNspawnTooOld, MinNspawnPrivateUsersVersion, host)
	}
	if image > host {
		fmt.Fprintf(warn, "stage1: warning: the host's systemd-nspawn (version %d) is older than the systemd %d this stage1-host image was built with; if the pod fails to start, upgrade systemd-container or rebuild the image on this host\n", host, image)
	}
	return nil
}

// nspawnVersion runs `systemd-nspawn --version`, whose first line is
// "systemd 252 (252.38-1~deb12u1)".
func nspawnVersion(path string) (int, error) {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("asking %s its version: %w", path, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	v, err := parseSystemdVersion(strings.TrimPrefix(strings.TrimSpace(line), "systemd "))
	if err != nil {
		return 0, fmt.Errorf("reading %s --version %q: %w", path, line, err)
	}
	return v, nil
}

// parseSystemdVersion reads the major version at the start of s: "252",
// "252.38-1~deb12u1", "256~rc3 (...)".
func parseSystemdVersion(s string) (int, error) {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 {
		return 0, fmt.Errorf("no systemd version in %q", s)
	}
	return strconv.Atoi(s[:end])
}

// imageSystemdVersion is the pod's stage1 image's systemd-version
// annotation, 0 when it has none.
func imageSystemdVersion(podDir string) (int, error) {
	path := pod.Stage1ManifestPath(podDir)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading stage1 manifest: %w", err)
	}
	var im schema.ImageManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return 0, fmt.Errorf("parsing stage1 manifest %s: %w", path, err)
	}
	s, ok := im.Annotations.Get(stage1.AnnSystemdVersion)
	if !ok {
		return 0, nil
	}
	v, err := parseSystemdVersion(s)
	if err != nil {
		return 0, fmt.Errorf("stage1 manifest %s: annotation %s: %w", path, stage1.AnnSystemdVersion, err)
	}
	return v, nil
}
