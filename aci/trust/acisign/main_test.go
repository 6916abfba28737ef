package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
	"github.com/rktng/rkt/aci/trust"
)

func TestGenSignTrustVerify(t *testing.T) {
	for _, algo := range []string{"ed25519", "rsa"} {
		t.Run(algo, func(t *testing.T) {
			dir := t.TempDir()
			var out bytes.Buffer
			if err := run([]string{"--gen-key", dir, "--name", "Sample Builder", "--email", "b@example.com", "--algo", algo}, &out); err != nil {
				t.Fatal(err)
			}
			fp := strings.TrimSpace(out.String())
			if fi, err := os.Stat(filepath.Join(dir, "privkey.gpg")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("private key: %v %v", fi, err)
			}
			img := filepath.Join(dir, "sample.aci")
			os.WriteFile(img, []byte("pretend image"), 0o644)
			if err := run([]string{"--key", filepath.Join(dir, "privkey.gpg"), "--sign", img}, &out); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, "config")
			if err := run([]string{"--trust", filepath.Join(dir, "pubkey.gpg"), "--prefix", "example.com/sample", "--config", cfg}, &out); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(cfg, "trustedkeys/prefix.d/example.com/sample", fp)); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(img)
			sig, _ := os.ReadFile(img + ".asc")
			if _, err := trust.New("", cfg).Verify(*types.MustACIdentifier("example.com/sample"), bytes.NewReader(data), bytes.NewReader(sig)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"--gen-key", "x"}, {"--sign", "x"}, {"--trust", "x"}} {
		if err := run(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
