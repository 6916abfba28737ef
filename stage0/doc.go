// Package stage0 is the rkt command line: it fetches and verifies images,
// imports them into the store, prepares pod directories and hands each pod
// to its stage1 (common/stage1/CONTRACT.md). Subpackages: cli (one file per
// command), cmd/rkt (the binary), prepare (pod directories from images and
// flags), launch (mounting rootfs and calling stage1 entrypoints), images
// (turning image arguments into store keys).
package stage0
