package cli

import (
	"context"
	"fmt"
	"net"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/rktng/rkt/stage0/mds"
)

func init() {
	extraCommands = append(extraCommands, newMetadataServiceCommand)
}

func newMetadataServiceCommand(g *globals) *cobra.Command {
	var port int
	var addr string
	cmd := &cobra.Command{
		Use:   "metadata-service [--listen-port=PORT]",
		Short: "Run metadata service",
		Long: `Provides a means for running apps to introspect their execution
environment and assert their identity (the appc metadata service).

Pods started with "rkt run --mds-register" register through the unix socket
` + mds.DefaultSocket + ` ($` + mdsSocketEnv + ` overrides it); their apps
reach the service at the URL in their AC_METADATA_URL. The service runs in the
foreground until SIGTERM or SIGINT. Under systemd socket activation it uses the
unix socket it is passed (and a TCP socket, if one is passed too).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMetadataService(g, addr, port)
		},
	}
	cmd.Flags().IntVar(&port, "listen-port", mds.DefaultPort, "listen port")
	cmd.Flags().StringVar(&addr, "listen-address", mds.DefaultAddress, "address to listen on for apps (default: every address, so that pods reach it on their network's host address)")
	return cmd
}

func runMetadataService(g *globals, addr string, port int) error {
	if port <= 0 || port > 65535 {
		return usageErrorf("--listen-port %d: want a port between 1 and 65535", port)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	httpL, regL, err := mdsListeners(net.JoinHostPort(addr, strconv.Itoa(port)), mdsSocketPath())
	if err != nil {
		return err
	}
	opts := mds.Options{}
	if g.Debug {
		opts.Logf = func(format string, args ...any) { g.debugf("metadata service: "+format, args...) }
	}
	fmt.Fprintf(g.stderr, "rkt: metadata service: apps on http://%s, registrations on %s\n", httpL.Addr(), regL.Addr())
	// Type=notify units learn that registrations can start.
	daemon.SdNotify(false, daemon.SdNotifyReady)
	return mds.NewServer(opts).Serve(ctx, httpL, regL)
}

// mdsListeners takes the sockets systemd passed (a unix one for
// registrations, a TCP one for apps) and opens those it did not pass.
// Sockets systemd owns are not removed on exit; the unit's RemoveOnStop
// cleans up.
func mdsListeners(addr, socket string) (httpL, regL net.Listener, err error) {
	passed, err := activation.Listeners()
	if err != nil {
		return nil, nil, fmt.Errorf("metadata service: socket activation: %w", err)
	}
	for _, l := range passed {
		if l == nil {
			continue
		}
		switch l.Addr().Network() {
		case "unix":
			if regL == nil {
				regL = l
				continue
			}
		case "tcp", "tcp4", "tcp6":
			if httpL == nil {
				httpL = l
				continue
			}
		}
		l.Close() // not a socket this service has a use for
	}
	if regL == nil {
		if regL, err = mds.ListenRegistration(socket); err != nil {
			if httpL != nil {
				httpL.Close()
			}
			return nil, nil, fmt.Errorf("metadata service: %w", err)
		}
	}
	if httpL == nil {
		if httpL, err = net.Listen("tcp", addr); err != nil {
			regL.Close()
			return nil, nil, fmt.Errorf("metadata service: listening for apps on %s: %w", addr, err)
		}
	}
	return httpL, regL, nil
}
