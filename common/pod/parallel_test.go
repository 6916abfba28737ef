package pod

import (
	"sync/atomic"
	"testing"
)

func TestParallelCallsEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 1000} {
		for _, workers := range []int{0, 1, 3, 64} {
			calls := make([]atomic.Int32, n)
			ParallelN(n, workers, func(i int) { calls[i].Add(1) })
			for i := range calls {
				if c := calls[i].Load(); c != 1 {
					t.Fatalf("n=%d workers=%d: f(%d) called %d times", n, workers, i, c)
				}
			}
		}
	}
}
