// Command notify is a test app: it tells its service manager READY=1 on
// $NOTIFY_SOCKET, then waits for SIGTERM.
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		fmt.Fprintln(os.Stderr, "notify: no NOTIFY_SOCKET")
		os.Exit(2)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "notify:", err)
		os.Exit(3)
	}
	if _, err := c.Write([]byte("READY=1")); err != nil {
		fmt.Fprintln(os.Stderr, "notify:", err)
		os.Exit(4)
	}
	fmt.Println("notify: sent READY=1")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
}
