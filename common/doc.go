// Package common holds what more than one stage needs: the stage1 contract
// (common/stage1), the pod directory and its states (common/pod) and rkt's
// configuration directories (common/config). Nothing here runs on its own.
package common
