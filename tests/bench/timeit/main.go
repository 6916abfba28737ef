// Command timeit runs a command N times and prints the median wall time,
// the largest peak RSS of the runs and the fastest and slowest run (the
// spread), for the benchmark script (bench.sh):
//
//	LABEL<TAB>median ms<TAB>peak RSS MiB<TAB>min ms<TAB>max ms
//
//	timeit [-n 10] [-setup CMD] [-name LABEL] -- COMMAND ARGS...
//
// -setup runs through sh before every run and is not timed. Both see the
// run's number (0, 1, ...) as $TIMEIT_RUN, for fresh directories per run.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 10, "runs")
	setup := flag.String("setup", "", "shell command run before each run, untimed")
	name := flag.String("name", "", "label")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "timeit: no command")
		os.Exit(2)
	}
	var times []time.Duration
	var maxRSS int64
	for i := 0; i < *n; i++ {
		os.Setenv("TIMEIT_RUN", fmt.Sprint(i))
		if *setup != "" {
			if out, err := exec.Command("sh", "-c", *setup).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "timeit: setup: %v: %s\n", err, out)
				os.Exit(1)
			}
		}
		c := exec.Command(args[0], args[1:]...)
		c.Stdout, c.Stderr = nil, os.Stderr
		start := time.Now()
		err := c.Run()
		d := time.Since(start)
		if err != nil {
			fmt.Fprintf(os.Stderr, "timeit: %s: %v\n", *name, err)
			os.Exit(1)
		}
		times = append(times, d)
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > maxRSS {
			maxRSS = ru.Maxrss
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	med := times[len(times)/2]
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("%s\t%.1f\t%.1f\t%.1f\t%.1f\n", *name, ms(med), float64(maxRSS)/1024, ms(times[0]), ms(times[len(times)-1]))
}
