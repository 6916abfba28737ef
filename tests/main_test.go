package tests

import (
	"os"
	"testing"

	"github.com/rktng/rkt/tests/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }
