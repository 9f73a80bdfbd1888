// Package version reports the build's version, set at link time with
// -ldflags "-X github.com/agentcloud/agentcloud/internal/version.Version=...".
package version

import (
	"runtime"
	"runtime/debug"
)

// Version and Commit are set by the linker; Commit falls back to VCS info.
var (
	Version = "dev"
	Commit  = ""
)

// Info is the version triple shown by `agentcloud version` and /v1/status.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version"`
}

// Get returns the build's version info.
func Get() Info {
	c := Commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					c = s.Value[:12]
				}
			}
		}
	}
	return Info{Version: Version, Commit: c, GoVersion: runtime.Version()}
}
