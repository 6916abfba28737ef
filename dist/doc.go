// Package dist holds what installing rkt puts on a system besides the
// binary and the stage1 images: systemd units (dist/systemd), and the
// sources of the bundled sample image (dist/sample-image).
package dist
