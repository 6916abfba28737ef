package boot

import (
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/common/stage1"
)

func TestAppEnv(t *testing.T) {
	env := appEnv("web", types.Environment{
		{Name: "FOO", Value: "1"},
		{Name: "AC_APP_NAME", Value: "spoofed"},
		{Name: "FOO", Value: "2"},
	}, map[string]string{"AC_METADATA_URL": "http://m/tok"})
	got := strings.Join(env, " ")
	want := "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin FOO=1 AC_APP_NAME=web AC_METADATA_URL=http://m/tok container=rkt"
	if got != want {
		t.Errorf("appEnv =\n%s\nwant\n%s", got, want)
	}
	env = appEnv("a", types.Environment{{Name: "PATH", Value: "/mine"}}, nil)
	if env[0] != "PATH=/mine" || len(env) != 3 {
		t.Errorf("image PATH not kept: %v", env)
	}
}

func TestBindArgs(t *testing.T) {
	for b, want := range map[bind]string{
		{source: "/a:b", target: "/opt/x"}:             `--bind=/a\:b:/opt/x`,
		{source: "/a", target: "/b", readOnly: true}:   "--bind-ro=/a:/b",
		{source: "/a", target: "/b", nonRecurse: true}: "--bind=/a:/b:norbind",
	} {
		if got := b.arg(); got != want {
			t.Errorf("%+v.arg() = %q, want %q", b, got, want)
		}
	}
}

func TestParseUUID(t *testing.T) {
	id, err := parseUUID("0a1b2c3d-0000-4000-8000-00000000000f")
	if err != nil || id[0] != 0x0a || id[15] != 0x0f {
		t.Errorf("parseUUID = %x, %v", id, err)
	}
	if _, err := parseUUID("nope"); err == nil {
		t.Error("bad UUID accepted")
	}
	if metadataURL(stage1.RunArgs{}, podNetwork{}) != "" || metadataURL(stage1.RunArgs{MDSToken: "t"}, podNetwork{}) == "" {
		t.Error("metadataURL does not follow the token")
	}
}
