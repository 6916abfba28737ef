// Package trust decides whether an image may be used: it keeps rkt's
// keystore of trusted OpenPGP keys (system and local trustedkeys/root.d and
// trustedkeys/prefix.d/<prefix>), verifies an image's detached signature
// against the keys trusted for the image's name, and adds keys to the store
// (`rkt trust`) after showing their fingerprints for review.
//
// The types, in the order a fetch meets them: a Keystore holds the keys;
// Keystore.Keyring(name) is the set trusted for one image name; a Check
// verifies a signature while the image streams through it (Keystore.Verify
// is the one-call form); a VerifyError says why an image was refused;
// Keystore.Trust adds keys.
package trust

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/appc/spec/schema/types"
)

// Keystore is rkt's trust store, rooted in two configuration directories:
// keys are read from both and written to the local one only.
//
//	<dir>/trustedkeys/root.d/<fingerprint>              trusted for every image
//	<dir>/trustedkeys/prefix.d/<prefix>/<fingerprint>   trusted for names under prefix
//
// A key file is an armored public key named by its 40-hex fingerprint. An
// empty file in the local directory masks the system key of the same
// fingerprint (a vendor key the administrator no longer trusts).
type Keystore struct {
	SystemDir string // e.g. /usr/lib/rkt; "" for none
	LocalDir  string // e.g. /etc/rkt; where Trust writes
}

// New returns the keystore of the given system and local configuration
// directories.
func New(systemDir, localDir string) *Keystore {
	return &Keystore{SystemDir: systemDir, LocalDir: localDir}
}

const (
	trustedKeysDir = "trustedkeys"
	rootDir        = "root.d"
	prefixDir      = "prefix.d"
)

func (ks *Keystore) rootPath(dir string) string {
	return filepath.Join(dir, trustedKeysDir, rootDir)
}

func (ks *Keystore) prefixPath(dir, prefix string) string {
	return filepath.Join(dir, trustedKeysDir, prefixDir, filepath.FromSlash(prefix))
}

// TrustedKey is one key of a keyring, with where it was found.
type TrustedKey struct {
	Fingerprint string // 40 lowercase hex digits
	Prefix      string // "" for a root key
	Path        string
	Entity      *openpgp.Entity
}

// Keyring is the set of keys trusted for one image name.
type Keyring struct {
	Name string
	Keys []TrustedKey
}

// Entities returns the keys as an openpgp key ring.
func (k *Keyring) Entities() openpgp.EntityList {
	el := make(openpgp.EntityList, 0, len(k.Keys))
	for _, t := range k.Keys {
		el = append(el, t.Entity)
	}
	return el
}

// Find returns the key with the given fingerprint.
func (k *Keyring) Find(fingerprint string) (TrustedKey, bool) {
	for _, t := range k.Keys {
		if t.Fingerprint == fingerprint {
			return t, true
		}
	}
	return TrustedKey{}, false
}

// ancestors returns the prefixes of name from the shortest ("example.com")
// to name itself, split on path components so that "example.com/foo" is not
// an ancestor of "example.com/foobar".
func ancestors(name string) []string {
	parts := strings.Split(name, "/")
	out := make([]string, 0, len(parts))
	for i := range parts {
		out = append(out, strings.Join(parts[:i+1], "/"))
	}
	return out
}

// Keyring returns the keys trusted for name: root keys and the keys of every
// prefix directory that is name or one of its path ancestors. In each of
// these places, an empty local file masks the system key of its name, and a
// local key replaces a system one.
func (ks *Keystore) Keyring(name types.ACIdentifier) (*Keyring, error) {
	if name.Empty() {
		return nil, errors.New("keyring for an empty image name")
	}
	type place struct{ prefix string }
	places := []place{{prefix: ""}}
	for _, p := range ancestors(name.String()) {
		places = append(places, place{prefix: p})
	}
	byFP := map[string]TrustedKey{}
	for _, pl := range places {
		masked := map[string]bool{}
		for i, d := range []string{ks.LocalDir, ks.SystemDir} {
			if d == "" {
				continue
			}
			dir := ks.rootPath(d)
			if pl.prefix != "" {
				dir = ks.prefixPath(d, pl.prefix)
			}
			files, err := keyFiles(dir)
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				fp := filepath.Base(f.path)
				if f.size == 0 {
					masked[fp] = i == 0
					continue
				}
				if masked[fp] {
					continue
				}
				if _, seen := byFP[fp]; seen && i == 1 {
					continue // the local copy wins
				}
				e, err := readKeyFile(f.path)
				if err != nil {
					return nil, err
				}
				byFP[fp] = TrustedKey{Fingerprint: fp, Prefix: pl.prefix, Path: f.path, Entity: e}
			}
		}
	}
	kr := &Keyring{Name: name.String()}
	for _, fp := range slices.Sorted(maps.Keys(byFP)) {
		kr.Keys = append(kr.Keys, byFP[fp])
	}
	return kr, nil
}

// allKeys returns every key in the store, whatever it is trusted for, one
// entity per fingerprint. A revocation found in any copy of a key applies to
// the returned entity, so that a key revoked in one file is not trusted
// through an older copy in another.
func (ks *Keystore) allKeys() (map[string]TrustedKey, error) {
	out := map[string]TrustedKey{}
	for _, d := range []string{ks.SystemDir, ks.LocalDir} {
		if d == "" {
			continue
		}
		base := filepath.Join(d, trustedKeysDir)
		err := filepath.WalkDir(base, func(path string, de fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading keystore %s: %w", path, err)
			}
			if !de.Type().IsRegular() || !isFingerprint(de.Name()) {
				return nil
			}
			fi, err := de.Info()
			if err != nil || fi.Size() == 0 {
				return err
			}
			e, err := readKeyFile(path)
			if err != nil {
				return err
			}
			fp := de.Name()
			if prev, ok := out[fp]; ok {
				e.Revocations = append(e.Revocations, prev.Entity.Revocations...)
			}
			out[fp] = TrustedKey{Fingerprint: fp, Path: path, Entity: e}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

type keyFile struct {
	path string
	size int64
}

// keyFiles lists the fingerprint-named files directly in dir; a missing
// directory has none.
func keyFiles(dir string) ([]keyFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading keystore directory %s: %w", dir, err)
	}
	var out []keyFile
	for _, e := range entries {
		if !e.Type().IsRegular() || !isFingerprint(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("reading key %s: %w", filepath.Join(dir, e.Name()), err)
		}
		out = append(out, keyFile{filepath.Join(dir, e.Name()), fi.Size()})
	}
	return out, nil
}

func isFingerprint(s string) bool {
	if len(s) != 40 && len(s) != 64 { // v4 and v6 keys
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// readKeyFile reads a trusted key and checks that it is named by its
// fingerprint, so that what `ls` shows is what is trusted.
func readKeyFile(path string) (*openpgp.Entity, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key %s: %w", path, err)
	}
	el, err := ReadKeys(raw)
	if err != nil {
		return nil, fmt.Errorf("reading key %s: %w", path, err)
	}
	fp := Fingerprint(el[0])
	if fp != filepath.Base(path) {
		return nil, fmt.Errorf("key %s has fingerprint %s, not the one in its name", path, fp)
	}
	return el[0], nil
}

// ReadKeys parses one or more public keys, armored or binary.
func ReadKeys(raw []byte) (openpgp.EntityList, error) {
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(raw))
	if err != nil {
		var binErr error
		el, binErr = openpgp.ReadKeyRing(bytes.NewReader(raw))
		if binErr != nil {
			return nil, fmt.Errorf("not an OpenPGP public key: %w", err)
		}
	}
	if len(el) == 0 {
		return nil, errors.New("not an OpenPGP public key: no key found")
	}
	return el, nil
}

// Fingerprint is e's primary key fingerprint in lowercase hex, the name of
// its file in the keystore.
func Fingerprint(e *openpgp.Entity) string {
	return hex.EncodeToString(e.PrimaryKey.Fingerprint)
}

// FormatFingerprint groups a hex fingerprint as gpg prints it:
// "8B86 DE38 890D DB72 9186  7B02 5210 BD88 8818 2190".
func FormatFingerprint(fp string) string {
	fp = strings.ToUpper(fp)
	var b strings.Builder
	for i := 0; i < len(fp); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
			if i == len(fp)/2 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(fp[i:min(i+4, len(fp))])
	}
	return b.String()
}

// Identities returns e's user IDs, sorted.
func Identities(e *openpgp.Entity) []string {
	ids := make([]string, 0, len(e.Identities))
	for n := range e.Identities {
		ids = append(ids, n)
	}
	sort.Strings(ids)
	return ids
}

// writeKey stores an armored public key as dir/<fingerprint>, atomically,
// so that a reader never sees half a key.
func writeKey(dir string, e *openpgp.Entity) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating keystore directory %s: %w", dir, err)
	}
	armored, err := ArmorPublicKey(e)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, Fingerprint(e))
	tmp, err := os.CreateTemp(dir, ".tmp-key-")
	if err != nil {
		return "", fmt.Errorf("writing key %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(armored); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing key %s: %w", dst, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing key %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("writing key %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("writing key %s: %w", dst, err)
	}
	return dst, nil
}
