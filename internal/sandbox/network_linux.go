//go:build linux

package sandbox

import (
	"context"
	"fmt"
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
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own netns: %w", err)}
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open netns %s: %w", nsPath, err)}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter netns %s: %w", nsPath, err)}
			return
		}
		var lc net.ListenConfig
		l, lerr := lc.Listen(ctx, network, address)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// The thread is stuck in the sandbox namespace: keep it locked so
			// it dies with this goroutine instead of serving other work.
			if l != nil {
				l.Close()
			}
			ch <- result{err: fmt.Errorf("return from netns: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{l, lerr}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("listen in sandbox netns: %w", r.err)
	}
	return r.l, nil
}

// DialInNetNS connects to address (e.g. 127.0.0.1:8000) inside the network
// namespace at nsPath: the socket is made on a locked OS thread inside the
// namespace, which keeps it for life, and connected from there. The
// port forwarding of the sandbox API reaches a sandbox's listeners so.
func DialInNetNS(ctx context.Context, nsPath, network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own netns: %w", err)}
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open netns %s: %w", nsPath, err)}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter netns %s: %w", nsPath, err)}
			return
		}
		var d net.Dialer
		c, derr := d.DialContext(ctx, network, address)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stuck in the sandbox namespace: the thread dies with this
			// goroutine (it stays locked).
			if c != nil {
				c.Close()
			}
			ch <- result{err: fmt.Errorf("return from netns: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c, derr}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("dial in sandbox netns: %w", r.err)
	}
	return r.c, nil
}
