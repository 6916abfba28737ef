package units

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	files := Render(Pod{Apps: []App{
		{Name: "web", ImageName: "example.com/web%1", Notify: true, PostStop: true},
		{Name: "db", ImageName: "example.com/db"},
	}})
	def := files["default.target"]
	if !strings.Contains(def, "Wants=systemd-journald.service db.service web.service") || !strings.Contains(def, "After=db.service web.service") {
		t.Errorf("default.target:\n%s", def)
	}
	web := files["web.service"]
	for _, want := range []string{
		"Description=Application=web Image=example.com/web%%1\n",
		"Type=notify\nNotifyAccess=all\n",
		"ExecStart=" + Stage2Bin + " run web\n",
		"ExecStopPost=" + Stage2Bin + " reaper web\nExecStopPost=-" + Stage2Bin + " post-stop web\n",
		"Conflicts=shutdown.target\n",
		"StandardOutput=journal+console\n",
		"SyslogIdentifier=web\n",
	} {
		if !strings.Contains(web, want) {
			t.Errorf("web.service lacks %q:\n%s", want, web)
		}
	}
	db := files["db.service"]
	if !strings.Contains(db, "Type=simple\n") || strings.Contains(db, "post-stop") {
		t.Errorf("db.service:\n%s", db)
	}
	inter := Render(Pod{Interactive: true, Apps: []App{{Name: "sh"}}})["sh.service"]
	if !strings.Contains(inter, "StandardInput=tty-force\n") || !strings.Contains(inter, "TTYPath=/dev/console\n") {
		t.Errorf("interactive sh.service:\n%s", inter)
	}
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc/systemd/system")
	if err := Write(dir, Pod{Apps: []App{{Name: "a"}}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"default.target", "a.service"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// The static units are what mkrootfs.sh copies; a halt or poweroff that
// did not end in exit would lose the pod's exit status.
func TestStaticShutdownUnitsExit(t *testing.T) {
	for _, target := range []string{"halt.target", "poweroff.target", "reboot.target", "exit.target", "ctrl-alt-del.target"} {
		b, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "Requires=systemd-exit.service") {
			t.Errorf("%s does not end in systemd-exit.service", target)
		}
	}
}
