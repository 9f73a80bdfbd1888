//go:build linux

// Package sbinit is the inside of a process-tier sandbox: the init that the
// tier (internal/sandbox/process) starts in fresh namespaces with Env set,
// as the small binary of sbinit/initmain that the daemon embeds, or by
// re-executing the daemon's own binary when it embeds none. It builds the
// sandbox root, drops privileges, installs seccomp and Landlock and spawns
// the commands the host asks for over the control protocol (proto.go),
// which the host side shares.
//
// It imports only the standard library and golang.org/x/sys/unix, on
// purpose. Go initializes packages in import-path order, each after its own
// imports, and this package's init function is where a sandbox init takes
// over (MaybeRun): with so few imports it runs before the binary's heavy
// package initializers (JSON Schema compilers, NATS, protobuf registries,
// ...), which a sandbox init never needs and which used to cost it more CPU
// than everything else a sandbox start does. See docs/RATIONALE.md, "Why
// the sandbox init is a leaf package". TestSbinitStaysLeaf guards the rule.
package sbinit
