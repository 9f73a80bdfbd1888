// Package hygiene holds repository-wide tests that keep the codebase honest:
// every package has a doc comment; api/ and client/ import only the
// standard library (client/ may also import api/); only <capability>http
// packages (and the router, daemon, CLI and authenticator) import
// internal/httpapi; and a component's test clock is a `Now func()
// time.Time` config field. It has no runtime code.
package hygiene
