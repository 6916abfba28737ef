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
	if strings.Contains(web, "PrivateMounts=") {
		t.Errorf("web.service has PrivateMounts= (stage2 makes the app's mount namespace):\n%s", web)
	}
	db := files["db.service"]
	if !strings.Contains(db, "Type=simple\n") || strings.Contains(db, "post-stop") {
		t.Errorf("db.service:\n%s", db)
	}
	inter := Render(Pod{Interactive: true, Apps: []App{{Name: "sh"}}})["sh.service"]
	if !strings.Contains(inter, "StandardInput=tty-force\n") || !strings.Contains(inter, "TTYPath=/dev/console\n") {
		t.Errorf("interactive sh.service:\n%s", inter)
	}
	if strings.Contains(inter, "TTYReset=") {
		t.Errorf("interactive sh.service resets the console (its flush drops the app's last output):\n%s", inter)
	}
}

func TestRenderResources(t *testing.T) {
	files := Render(Pod{
		Apps:      []App{{Name: "a", Resources: Resources{MemoryBytes: 50_000_000, CPUMilli: 205, CPUWeight: 20}}, {Name: "b"}},
		Resources: Resources{MemoryBytes: 1 << 30, CPUMilli: 1500},
	})
	a := files["a.service"]
	for _, want := range []string{"MemoryMax=50000000\n", "CPUQuota=20.50%\n", "CPUWeight=20\n", "OOMPolicy=stop\n"} {
		if !strings.Contains(a, want) {
			t.Errorf("a.service lacks %q:\n%s", want, a)
		}
	}
	if b := files["b.service"]; strings.Contains(b, "Memory") || strings.Contains(b, "CPU") {
		t.Errorf("b.service has limits it was not given:\n%s", b)
	}
	if got, want := files[PodLimitsDropIn], "[Slice]\nMemoryMax=1073741824\nCPUQuota=150.00%\n"; !strings.HasSuffix(got, want) {
		t.Errorf("pod drop-in %q, want it to end in %q", got, want)
	}
	if _, ok := Render(Pod{Apps: []App{{Name: "a"}}})[PodLimitsDropIn]; ok {
		t.Error("a pod without limits has a limits drop-in")
	}
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc/systemd/system")
	if err := Write(dir, Pod{Apps: []App{{Name: "a"}}, Resources: Resources{MemoryBytes: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"default.target", "a.service", PodLimitsDropIn} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// The static units are what the stage1 packer (aci/acibuild/mkstage1) copies; a halt or poweroff that
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
