// Package hygiene holds repository-wide tests that keep the codebase honest:
// every package has a doc comment, and api/ and client/ import only the
// standard library (client/ may also import api/). It has no runtime code.
package hygiene
