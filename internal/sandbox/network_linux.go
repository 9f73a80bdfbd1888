//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// ListenInNetNS opens a listener inside the network namespace at nsPath
// (from Sandbox.NetNSPath) and returns it; the returned listener is served
// from the host like any other. It is the building block for the egress
// proxy: listen on 127.0.0.1:PORT inside the sandbox, then hand the sandbox
// HTTP_PROXY=http://127.0.0.1:PORT through a NetworkHook.
//
// It runs on a locked OS thread that enters the namespace and returns to the
// original one before unlocking. The caller needs CAP_SYS_ADMIN over the
// namespace's owner (the daemon runs as root).
func ListenInNetNS(ctx context.Context, nsPath, network, address string) (net.Listener, error) {
	l, err := inNetNS(nsPath, func() (net.Listener, error) {
		var lc net.ListenConfig
		return lc.Listen(ctx, network, address)
	})
	if err != nil {
		return nil, fmt.Errorf("listen in sandbox netns: %w", err)
	}
	return l, nil
}

// DialInNetNS connects to address (e.g. 127.0.0.1:8000) inside the network
// namespace at nsPath: the socket is made on a locked OS thread inside the
// namespace, which keeps it for life, and connected from there. The
// port forwarding of the sandbox API reaches a sandbox's listeners so.
func DialInNetNS(ctx context.Context, nsPath, network, address string) (net.Conn, error) {
	c, err := inNetNS(nsPath, func() (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	})
	if err != nil {
		return nil, fmt.Errorf("dial in sandbox netns: %w", err)
	}
	return c, nil
}

// inNetNS runs open on a locked OS thread inside the network namespace at
// nsPath and returns to the original namespace before unlocking; a socket
// keeps the namespace it was made in. A thread that cannot return stays
// locked, so it dies with its goroutine instead of serving other work.
func inNetNS[T io.Closer](nsPath string, open func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var zero T
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, fmt.Errorf("open own netns: %w", err)}
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, fmt.Errorf("open netns %s: %w", nsPath, err)}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, fmt.Errorf("enter netns %s: %w", nsPath, err)}
			return
		}
		v, oerr := open()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			if oerr == nil {
				_ = v.Close()
			}
			ch <- result{zero, fmt.Errorf("return from netns: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{v, oerr}
	}()
	r := <-ch
	return r.v, r.err
}
