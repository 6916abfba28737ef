// Package machined talks to systemd-machined on the system bus: it finds
// out whether a pod can be registered (by registering, since a bus that
// answers introspection may still refuse the registration itself) and
// removes a registration that nspawn left behind.
package machined

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	dest  = "org.freedesktop.machine1"
	path  = dbus.ObjectPath("/org/freedesktop/machine1")
	iface = "org.freedesktop.machine1.Manager"
)

// MachineName is the pod's machine name for nspawn and machined.
func MachineName(uuid string) string { return "rkt-" + uuid }

// ErrNoBus is returned when there is no system bus to talk to.
var ErrNoBus = errors.New("no system bus")

// Timeout bounds every exchange with the bus: a pod never waits long for a
// registration it can do without.
const Timeout = 2 * time.Second

func connect() (*dbus.Conn, error) {
	addr := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
	if addr == "" {
		const sock = "/run/dbus/system_bus_socket"
		if _, err := os.Stat(sock); err != nil {
			return nil, ErrNoBus
		}
		addr = "unix:path=" + sock
	}
	conn, err := dbus.Dial(addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to the system bus: %w", err)
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticating on the system bus: %w", err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting the system bus: %w", err)
	}
	return conn, nil
}

// Probe registers machine name with leader as its leader process, then
// unregisters it: a nil error means nspawn's own registration will work.
func Probe(ctx context.Context, name string, id [16]byte, leader int, root string) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	conn, err := connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	obj := conn.Object(dest, path)
	call := obj.CallWithContext(ctx, iface+".RegisterMachine", 0,
		name, id[:], "rkt", "container", uint32(leader), root)
	if call.Err != nil {
		return fmt.Errorf("registering machine %s: %w", name, call.Err)
	}
	if err := obj.CallWithContext(ctx, iface+".UnregisterMachine", 0, name).Err; err != nil {
		return fmt.Errorf("unregistering probe machine %s: %w", name, err)
	}
	return nil
}

// Unregister removes machine name; a machine that is not registered, or a
// host without a bus or machined, is not an error.
func Unregister(ctx context.Context, name string) error {
	return callOnMachine(ctx, "UnregisterMachine", "unregistering", name)
}

// SystemdRunning is whether the host runs systemd as its init: systemd's
// own marker directory and systemd's manager on the system bus. The marker
// alone is not enough: a test (or a chroot) may create it without a
// systemd behind it.
func SystemdRunning(ctx context.Context) bool {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	conn, err := connect()
	if err != nil {
		return false
	}
	defer conn.Close()
	var has bool
	err = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.systemd1").Store(&has)
	return err == nil && has
}

// Terminate asks machined to end machine name (it stops the machine's
// scope through systemd); a machine that is not registered, or no
// machined, is not an error.
func Terminate(ctx context.Context, name string) error {
	return callOnMachine(ctx, "TerminateMachine", "terminating", name)
}

// callOnMachine calls machined's method on machine name. A host without a
// bus, without machined, or without that machine has nothing to undo.
func callOnMachine(ctx context.Context, method, doing, name string) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	conn, err := connect()
	if errors.Is(err, ErrNoBus) {
		return nil
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	err = conn.Object(dest, path).CallWithContext(ctx, iface+"."+method, 0, name).Err
	if err == nil || gone(err) {
		return nil
	}
	return fmt.Errorf("%s machine %s: %w", doing, name, err)
}

// gone is whether err says the machine (or machined) is not there.
func gone(err error) bool {
	var de dbus.Error
	return errors.As(err, &de) && (strings.HasSuffix(de.Name, ".NoSuchMachine") ||
		de.Name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
		de.Name == "org.freedesktop.DBus.Error.NameHasNoOwner")
}
