package api

import "time"

// Template is one sandbox template: the built-in "host" template (a
// read-only view of the host's system dirs) or an image template (a stack
// of read-only layers under a per-sandbox writable overlay).
type Template struct {
	Name string `json:"name"`
	// Source is "host", "oci" (a docker save or OCI layout archive) or
	// "tar" (a directory packed by the CLI).
	Source string `json:"source"`
	// Layers are the layers' digests (sha256 of each uncompressed layer
	// tar), bottom first; layers are shared between templates by digest.
	Layers  []string  `json:"layers,omitempty"`
	Bytes   int64     `json:"bytes,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

// TemplateList is the body of GET /v1/templates.
type TemplateList struct {
	Templates []Template `json:"templates"`
}
