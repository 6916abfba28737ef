// Package dist holds what installing rkt puts on a system besides the
// binary and the stage1 images: systemd units (dist/systemd), the data
// directory's modes and rkt's groups (dist/tmpfiles.d, dist/sysusers.d),
// the Debian package's scripts and its test (dist/deb), the man page
// generator (dist/genman), and the sources of the bundled sample image
// (dist/sample-image).
package dist
