// Package hygiene holds repository-wide tests that keep the codebase honest:
// every package has a doc comment; api/ and client/ import only the
// standard library (client/ may also import api/); only <capability>http
// packages (and the router, the daemon and the CLI) import
// internal/httpapi; a component's test clock is a `Now func() time.Time`
// config field; what an outbound request is for travels in its
// egress.Caller, never in context keys outside internal/egress; the layer
// rules (which packages may import which, written as data in
// imports_test.go); size caps for files and functions; and no init()
// functions. Lists of today's exceptions must shrink: an entry that is no
// longer needed fails the test. It has no runtime code.
package hygiene
