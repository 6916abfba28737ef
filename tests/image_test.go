package tests

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/rktng/rkt/aci/acibuild"
	"github.com/rktng/rkt/tests/testutil"
)

// TestFetch imports images by path and file:// URL in every compression,
// checks the image ID (sha512 of the uncompressed tar), that importing the
// same image twice lists it once, and that an unsigned image is refused
// without --insecure-options=image.
func TestFetch(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	im := c.A.InspectImage("example.com/fetch-me")
	plain, err := im.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := imageID(plain)
	plainPath := c.WriteBytes("plain.aci", plain)

	if got := c.Fetch(plainPath); got != want {
		t.Errorf("fetch %s: ID %s, want sha512 of the tar %s", plainPath, got, want)
	}
	im.Gzip = true
	gz, err := im.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gunzip(t, gz), plain) {
		t.Fatal("test bug: the gzip image does not hold the plain tar")
	}
	gzPath := c.WriteBytes("gz.aci", gz)
	if got := c.Fetch("file://" + gzPath); got != want {
		t.Errorf("fetch file://%s: ID %s, want %s (same tar, gzip'ed)", gzPath, got, want)
	}
	for _, tool := range []string{"bzip2", "xz"} {
		t.Run(tool, func(t *testing.T) {
			c := c.Sub(t)
			bin, err := exec.LookPath(tool)
			if err != nil {
				t.Skipf("requires %s on the host to compress the image", tool)
			}
			out, err := exec.Command(bin, "-c", plainPath).Output()
			if err != nil {
				t.Fatal(err)
			}
			p := c.WriteBytes(tool+".aci", out)
			if got := c.Fetch(p); got != want {
				t.Errorf("fetch %s: ID %s, want %s", p, got, want)
			}
		})
	}
	n := 0
	for _, e := range c.Images() {
		if e.ID == want {
			n++
		}
	}
	if n != 1 {
		t.Errorf("image %s listed %d times after importing it repeatedly, want once", want, n)
	}

	// Unsigned, and no --insecure-options=image: refused, nothing stored.
	other := c.WriteImage(c.A.InspectImage("example.com/unsigned"))
	r := c.Rkt("fetch", other)
	c.ExpectFailure(r)
	if !strings.Contains(strings.ToLower(r.Stderr), "signature") && !strings.Contains(r.Stderr, "insecure") {
		t.Errorf("refusal of an unsigned image does not say why (signature / --insecure-options): %q", r.Stderr)
	}
	if strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("refused fetch printed %q on stdout", r.Stdout)
	}
	for _, e := range c.Images() {
		if strings.HasPrefix(e.Name, "example.com/unsigned") {
			t.Errorf("refused unsigned image is listed: %+v", e)
		}
	}
	c.ExpectFailure(c.Rkt(testutil.Insecure, "fetch", c.Path("no-such.aci")), "no-such.aci")
}

// TestImageList checks the text and JSON forms of `rkt image list` and the
// --fields, --no-legend, --full, --sort and --order flags.
func TestImageList(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	start := time.Now()
	idA := c.Fetch(c.WriteImage(c.A.InspectImage("example.com/list-a")))
	time.Sleep(10 * time.Millisecond) // distinct import times for --sort
	idB := c.Fetch(c.WriteImage(c.A.InspectImage("example.com/list-b")))

	r := c.ExpectOK(c.Rkt("image", "list"))
	lines := r.Lines()
	if len(lines) != 3 {
		t.Fatalf("want a legend and 2 images: %v", r)
	}
	header := strings.Fields(lines[0])
	if strings.Join(header, " ") != "ID NAME SIZE IMPORT TIME LAST USED" {
		t.Errorf("legend %q, want rkt's ID NAME SIZE IMPORT TIME LAST USED", lines[0])
	}
	for _, id := range []string{idA, idB} {
		short := id[:len("sha512-")+12]
		if !strings.Contains(r.Stdout, short+"\t") && !strings.Contains(r.Stdout, short+" ") {
			t.Errorf("short ID %s not listed: %v", short, r)
		}
		if strings.Contains(r.Stdout, id) {
			t.Errorf("full ID %s listed without --full", id)
		}
	}
	if !strings.Contains(r.Stdout, "example.com/list-a:1.0.0") {
		t.Errorf("name:version not listed: %v", r)
	}

	r = c.ExpectOK(c.Rkt("image", "list", "--no-legend", "--full", "--fields=id,name"))
	var rows [][]string
	for _, l := range r.Lines() {
		rows = append(rows, strings.Fields(l))
	}
	if len(rows) != 2 || len(rows[0]) != 2 || rows[0][0] != idA || rows[0][1] != "example.com/list-a:1.0.0" || rows[1][0] != idB {
		t.Errorf("--no-legend --full --fields=id,name: got %q, want [[%s example.com/list-a:1.0.0] [%s ...]]", rows, idA, idB)
	}

	imgs := c.Images()
	if len(imgs) != 2 {
		t.Fatalf("JSON lists %d images, want 2: %+v", len(imgs), imgs)
	}
	for _, e := range imgs {
		if !testutil.IsImageID(e.ID) {
			t.Errorf("JSON id %q is not a full image ID", e.ID)
		}
		if e.Size <= 0 {
			t.Errorf("JSON size of %s is %d", e.Name, e.Size)
		}
		it := time.Unix(0, e.ImportTime)
		if it.Before(start.Add(-time.Second)) || it.After(time.Now().Add(time.Second)) {
			t.Errorf("JSON import_time of %s is %v, not nanoseconds of the import (started %v)", e.Name, it, start)
		}
	}
	raw := c.ExpectOK(c.Rkt("image", "list", "--format=json"))
	var objs []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw.Stdout), &objs); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "name", "import_time", "last_used_time", "size"} {
		if _, ok := objs[0][k]; !ok {
			t.Errorf("image list JSON lacks %q: %s", k, raw.Stdout)
		}
	}

	r = c.ExpectOK(c.Rkt("image", "list", "--format=json", "--sort=importtime", "--order=desc"))
	var desc []testutil.ImageEntry
	if err := json.Unmarshal([]byte(r.Stdout), &desc); err != nil || len(desc) != 2 || desc[0].ID != idB {
		t.Errorf("--sort=importtime --order=desc: want %s first: %v", idB, r)
	}
	c.Expect(c.Rkt("image", "list", "--fields=id,bogus"), 254)
}

// TestImageRm removes images by full ID and by prefix; unknown IDs fail.
func TestImageRm(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	idA := c.Fetch(c.WriteImage(c.A.InspectImage("example.com/rm-a")))
	idB := c.Fetch(c.WriteImage(c.A.InspectImage("example.com/rm-b")))
	idC := c.Fetch(c.WriteImage(c.A.InspectImage("example.com/rm-c")))

	c.ExpectOK(c.Rkt("image", "rm", idA))
	c.ExpectOK(c.Rkt("image", "rm", idB[:len("sha512-")+12]))
	imgs := c.Images()
	if len(imgs) != 1 || imgs[0].ID != idC {
		t.Errorf("after removing two of three images: %+v", imgs)
	}
	c.ExpectFailure(c.Rkt("image", "rm", idA), idA[:len("sha512-")+12])
	c.Expect(c.Rkt("image", "rm", "sha512-"+strings.Repeat("0", 128)), 254)
	// The store still works after the removals.
	c.ExpectOK(c.Rkt("image", "cat-manifest", idC))
}

// TestImageGC checks that image gc honours its grace period, removes
// unused images and their rendered trees, and does not break a prepared
// pod whose tree it must keep.
func TestImageGC(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := c.Fetch(c.InspectACI("--print-msg=still-here"))
	c.ExpectOK(c.Rkt("image", "gc"))
	if c.ImageByID(id) == nil {
		t.Fatalf("image gc with the default 24h grace period removed a fresh image")
	}

	uuid := c.MustPrepare(id)
	c.ExpectOK(c.Rkt("image", "gc", "--grace-period=0s"))
	r := c.ExpectOK(c.Rkt(testutil.Insecure, "run-prepared", uuid))
	expectLine(t, r, "still-here")

	c.ExpectOK(c.Rkt("gc", "--grace-period=0s"))
	c.ExpectOK(c.Rkt("image", "gc", "--grace-period=0s"))
	if imgs := c.Images(); len(imgs) != 0 {
		t.Errorf("image gc --grace-period=0s left %+v", imgs)
	}
	if trees := dirEntries(filepath.Join(c.Dir, "cas", "tree")); len(trees) != 0 {
		t.Errorf("image gc left rendered trees of removed images: %q", trees)
	}
}

// TestImageExport checks that export gives back the imported tar byte for
// byte, and refuses to overwrite without --overwrite.
func TestImageExport(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	im := c.A.InspectImage("example.com/export-me")
	plain, err := im.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	id := c.Fetch(c.WriteBytes("export-me.aci", plain))
	out := c.Path("exported.aci")
	c.ExpectOK(c.Rkt("image", "export", id, out))
	got := readFile(t, out)
	if !bytes.Equal(got, plain) {
		t.Errorf("exported image differs from the imported tar (%d vs %d bytes)", len(got), len(plain))
	}
	if imageID(got) != id {
		t.Errorf("exported image hashes to %s, want %s", imageID(got), id)
	}
	c.ExpectFailure(c.Rkt("image", "export", id, out), out)
	c.ExpectOK(c.Rkt("image", "export", "--overwrite", id, out))

	// A gzip'ed import exports as the uncompressed tar with the same ID.
	im2 := c.A.InspectImage("example.com/export-gz")
	im2.Gzip = true
	id2 := c.Fetch(c.WriteImage(im2))
	out2 := c.Path("exported-gz.aci")
	c.ExpectOK(c.Rkt("image", "export", id2, out2))
	if got := imageID(readFile(t, out2)); got != id2 {
		t.Errorf("export of a gzip'ed import hashes to %s, want its ID %s", got, id2)
	}
}

// layeredImages fetches a base image and an app image depending on it, with
// a pathWhitelist, and returns the app image's ID.
func layeredImages(c *testutil.Ctx) (appID string) {
	t := c.T
	base := c.A.InspectImage("example.com/base")
	base.Manifest.App = nil
	base.Files = nil
	base.AddFile("etc/from-base", "base", 0o644)
	base.AddFile("etc/overridden", "base", 0o644)
	base.AddFile("etc/not-whitelisted", "base", 0o644)
	baseID := c.Fetch(c.WriteImage(base))

	app := c.A.InspectImage("example.com/layered")
	app.AddFile("etc/overridden", "app", 0o644)
	h, err := types.NewHash(baseID)
	if err != nil {
		t.Fatal(err)
	}
	app.Manifest.Dependencies = types.Dependencies{{ImageName: base.Manifest.Name, ImageID: h}}
	app.Manifest.PathWhitelist = []string{"/inspect", "/etc/passwd", "/etc/group", "/etc/from-base", "/etc/overridden", "/tmp"}
	return c.Fetch(c.WriteImage(app))
}

// TestImageExtractRender checks extract (the image alone) against render
// (with its dependencies, later layers winning, pathWhitelist applied), the
// --rootfs-only and --overwrite flags, and a pod of the layered image.
func TestImageExtractRender(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	id := layeredImages(c)

	ext := c.Path("extracted")
	c.ExpectOK(c.Rkt("image", "extract", id, ext))
	if _, err := os.Stat(filepath.Join(ext, "manifest")); err != nil {
		t.Errorf("extract: no manifest: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(ext, "rootfs", "inspect")); err != nil || len(b) == 0 {
		t.Errorf("extract: rootfs/inspect: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ext, "rootfs", "etc", "from-base")); err == nil {
		t.Errorf("extract wrote the dependency's files: extract is the image alone")
	}
	c.ExpectFailure(c.Rkt("image", "extract", id, ext))
	c.ExpectOK(c.Rkt("image", "extract", "--overwrite", id, ext))

	ren := c.Path("rendered")
	c.ExpectOK(c.Rkt("image", "render", "--rootfs-only", id, ren))
	for f, want := range map[string]string{"etc/from-base": "base", "etc/overridden": "app"} {
		if b, err := os.ReadFile(filepath.Join(ren, f)); err != nil || string(b) != want {
			t.Errorf("render: %s = %q (%v), want %q", f, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(ren, "etc", "not-whitelisted")); err == nil {
		t.Errorf("render kept a file outside the pathWhitelist")
	}
	if _, err := os.Stat(filepath.Join(ren, "manifest")); err == nil {
		t.Errorf("render --rootfs-only wrote a manifest")
	}
	c.ExpectFailure(c.Rkt("image", "render", "--rootfs-only", id, ren))
	c.ExpectOK(c.Rkt("image", "render", "--rootfs-only", "--overwrite", id, ren))

	r := c.ExpectOK(c.Run(id, "--exec=/inspect", "--", "--read-file=/etc/from-base", "--read-file=/etc/overridden", "--stat-file=/etc/not-whitelisted"))
	expectLine(t, r, "<<<base>>>")
	expectLine(t, r, "<<<app>>>")
	expectLine(t, r, "/etc/not-whitelisted: missing")
}

// TestImageCatManifest prints an image's manifest, compact and pretty.
func TestImageCatManifest(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	im := c.A.InspectImage("example.com/cat-me", "--print-msg=x")
	im.SetEnv("FOO", "bar")
	id := c.Fetch(c.WriteImage(im))
	r := c.ExpectOK(c.Rkt("image", "cat-manifest", id))
	var got schema.ImageManifest
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("cat-manifest output is not an image manifest: %v: %v", err, r)
	}
	if got.Name != im.Manifest.Name || got.App == nil || strings.Join(got.App.Exec, " ") != "/inspect --print-msg=x" {
		t.Errorf("cat-manifest: got %+v", got)
	}
	if v, _ := got.Labels.Get("version"); v != "1.0.0" {
		t.Errorf("cat-manifest: version label %q", v)
	}
	p := c.ExpectOK(c.Rkt("image", "cat-manifest", "--pretty-print", id))
	if !strings.Contains(p.Stdout, "\n  ") && !strings.Contains(p.Stdout, "\n\t") {
		t.Errorf("--pretty-print is not indented: %q", p.Stdout)
	}
	c.ExpectFailure(c.Rkt("image", "cat-manifest", "sha512-"+strings.Repeat("ab", 64)))
}

// TestImageLinks runs an image holding legitimate links and special modes:
// absolute and relative symlinks, a symlinked directory, a hardlink, a
// setuid file and files owned by another user must all arrive intact.
func TestImageLinks(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	im := c.A.InspectImage("example.com/links")
	im.Files = append(im.Files,
		acibuild.File{Path: "usr/bin/tool", Mode: 0o755, Data: []byte("tool"), Uid: 1000, Gid: 1001},
		acibuild.File{Path: "bin", Type: tar.TypeSymlink, Linkname: "usr/bin", Mode: 0o777},
		acibuild.File{Path: "abs-passwd", Type: tar.TypeSymlink, Linkname: "/etc/passwd", Mode: 0o777},
		acibuild.File{Path: "etc/up", Type: tar.TypeSymlink, Linkname: "../usr/bin/tool", Mode: 0o777},
		acibuild.File{Path: "hard", Type: tar.TypeLink, Linkname: "usr/bin/tool"},
		acibuild.File{Path: "setuid", Mode: 0o755 | os.ModeSetuid, Data: []byte("s")},
		acibuild.File{Path: "sticky", Mode: 0o1777 | os.ModeSticky, Type: tar.TypeDir},
	)
	r := c.ExpectOK(c.Run(c.WriteImage(im), "--exec=/inspect", "--",
		"--read-file=/bin/tool", "--read-file=/abs-passwd", "--read-file=/etc/up", "--read-file=/hard",
		"--stat-file=/usr/bin/tool", "--stat-file=/setuid", "--stat-file=/sticky", "--stat-file=/bin"))
	expectLine(t, r, "<<<tool>>>")
	if !strings.Contains(r.Stdout, "<<<"+testutil.Passwd+">>>") {
		t.Errorf("absolute symlink /abs-passwd does not resolve inside the rootfs: %v", r)
	}
	for _, l := range []string{
		"/usr/bin/tool: type=file mode=0755 uid=1000 gid=1001 size=4",
		"/setuid: type=file mode=4755 uid=0 gid=0 size=1",
		"/bin: type=symlink mode=0777 uid=0 gid=0 size=7",
	} {
		expectLine(t, r, l)
	}
	if !strings.Contains(r.Stdout, "/sticky: type=dir mode=1777 ") {
		t.Errorf("sticky directory lost its mode: %v", r)
	}
}

// TestAppFilesystems checks what every app gets from its stage1: /proc of
// its own, /sys, and the /dev nodes appc lists.
func TestAppFilesystems(t *testing.T) {
	t.Parallel()
	c := testutil.New(t)
	r := c.ExpectOK(c.Run(c.InspectACI("--stat-file=/dev/null", "--stat-file=/dev/zero", "--stat-file=/dev/urandom",
		"--stat-file=/dev/pts", "--stat-file=/dev/shm", "--read-file=/proc/self/comm", "--stat-file=/sys/kernel",
		"--write-file=/dev/null:discarded")))
	for _, dev := range []string{"/dev/null", "/dev/zero", "/dev/urandom"} {
		if !strings.Contains(r.Stdout, dev+": type=device ") {
			t.Errorf("%s is not a device node in the app: %v", dev, r)
		}
	}
	for _, dir := range []string{"/dev/pts", "/dev/shm", "/sys/kernel"} {
		if !strings.Contains(r.Stdout, dir+": type=dir ") {
			t.Errorf("%s is not a directory in the app: %v", dir, r)
		}
	}
	if !strings.Contains(r.Stdout, "<<<inspect\n>>>") {
		t.Errorf("/proc/self is not the app's: %v", r)
	}
}
