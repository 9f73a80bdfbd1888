// Package hygiene holds repository-wide tests that keep the codebase honest:
// every package has a doc comment; api/ and client/ import only the
// standard library (client/ may also import api/); only <capability>http
// packages (and the router, daemon, CLI and authenticator) import
// internal/httpapi; a component's test clock is a `Now func()
// time.Time` config field; and what an outbound request is for travels in
// its egress.Caller, never in context keys outside internal/egress. It has
// no runtime code.
package hygiene
