// Package tests is rkt's functional test suite: it builds rkt, a stage1 and
// the inspect images from the source tree at test time and drives the real
// binary as root, each test in its own data and configuration directories.
// The harness is in tests/testutil, the in-pod probe in tests/inspect. Run
// it with `go test ./tests/` (RKT_STAGE1 picks the stage1: see testutil).
package tests
