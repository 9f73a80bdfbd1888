package sandbox

import "fmt"

// Images resolves image templates: templates whose root filesystem is a
// stack of read-only layer directories (built from an OCI archive, a
// directory or a Debian rootfs; see package internal/sandbox/image) rather
// than a view of the host. Every sandbox of such a template gets its own
// writable overlay on top, so writes never reach the shared layers, and the
// host's /etc is not visible.
type Images interface {
	// ImageNames lists the image templates, sorted.
	ImageNames() []string
	// ImageLayers returns the layer directories of template name, bottom
	// layer first, or an error wrapping ErrUnknownTemplate.
	ImageLayers(name string) ([]string, error)
}

// TierNames names tiers, in order (for logs and errors).
func TierNames(tiers []Tier) []string {
	names := make([]string, len(tiers))
	for i, t := range tiers {
		names[i] = t.Name()
	}
	return names
}

// UpperDir returns the host path of sb's overlay upper dir (what its
// processes wrote to the image's root), for template builds.
func UpperDir(sb Sandbox) (string, error) {
	if uh, ok := unwrap(sb).(UpperHolder); ok && uh.UpperDir() != "" {
		return uh.UpperDir(), nil
	}
	return "", fmt.Errorf("sandbox %s: no host overlay dir: %w", sb.ID(), ErrUnsupported)
}
