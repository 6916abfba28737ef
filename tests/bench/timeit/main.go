// Command timeit runs commands N times each and prints, per command, the
// median wall time, the largest peak RSS of the runs and the fastest and
// slowest run (the spread), for the benchmark script (bench.sh):
//
//	LABEL<TAB>median ms<TAB>peak RSS MiB<TAB>min ms<TAB>max ms
//
//	timeit [-n 10] [-setup CMD] [-name LABEL] -- COMMAND ARGS... [';;' [-setup CMD] [-name LABEL] -- COMMAND ARGS...]...
//
// -setup runs through sh before every run of its command and is not timed.
// Both see the run's number (0, 1, ...) as $TIMEIT_RUN, for fresh
// directories per run. Several commands (separated by a ";;" argument)
// run in turn, round after round, so that a machine whose speed drifts
// (this one's process starts vary by 2x within minutes) weighs on all of
// them alike: their ratio is what the benchmark reports.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"time"
)

// measure is one command and what its runs took.
type measure struct {
	name, setup string
	args        []string
	times       []time.Duration
	maxRSS      int64
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "timeit:", err)
		os.Exit(1)
	}
}

func run(argv []string) error {
	n := 10
	var ms []*measure
	for first := true; len(argv) > 0 || first; first = false {
		fs := flag.NewFlagSet("timeit", flag.ContinueOnError)
		if first {
			fs.IntVar(&n, "n", 10, "runs of each command")
		}
		m := &measure{}
		fs.StringVar(&m.setup, "setup", "", "shell command run before each run, untimed")
		fs.StringVar(&m.name, "name", "", "label")
		if err := fs.Parse(argv); err != nil {
			return err
		}
		rest := fs.Args()
		i := 0
		for i < len(rest) && rest[i] != ";;" {
			i++
		}
		m.args, argv = rest[:i], nil
		if i < len(rest) {
			argv = rest[i+1:]
		}
		if len(m.args) == 0 {
			return errors.New("no command")
		}
		ms = append(ms, m)
	}
	for i := 0; i < n; i++ {
		os.Setenv("TIMEIT_RUN", fmt.Sprint(i))
		for _, m := range ms {
			if err := m.once(); err != nil {
				return err
			}
		}
	}
	for _, m := range ms {
		m.report()
	}
	return nil
}

func (m *measure) once() error {
	if m.setup != "" {
		if out, err := exec.Command("sh", "-c", m.setup).CombinedOutput(); err != nil {
			return fmt.Errorf("setup of %s: %v: %s", m.name, err, out)
		}
	}
	c := exec.Command(m.args[0], m.args[1:]...)
	c.Stdout, c.Stderr = nil, os.Stderr
	start := time.Now()
	err := c.Run()
	d := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %v", m.name, err)
	}
	m.times = append(m.times, d)
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > m.maxRSS {
		m.maxRSS = ru.Maxrss
	}
	return nil
}

func (m *measure) report() {
	t := m.times
	sort.Slice(t, func(i, j int) bool { return t[i] < t[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("%s\t%.1f\t%.1f\t%.1f\t%.1f\n", m.name, ms(t[len(t)/2]), float64(m.maxRSS)/1024, ms(t[0]), ms(t[len(t)-1]))
}
