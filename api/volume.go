package api

import "time"

// CreateVolumeRequest is the body of POST /v1/volumes.
type CreateVolumeRequest struct {
	// Name is unique among the caller's volumes (a-z first, then a-z 0-9
	// -, at most 63).
	Name string `json:"name"`
	// SizeMB is the volume's quota in MiB; 0 means the server's maximum
	// (volumes.max_bytes), which it may not exceed.
	SizeMB int64 `json:"size_mb,omitempty"`
}

// Volume describes a named persistent volume.
type Volume struct {
	Name    string    `json:"name"`
	Owner   string    `json:"owner"`
	Created time.Time `json:"created"`
	// LimitBytes is the quota; UsedBytes the disk space its files take
	// now (allocated blocks).
	LimitBytes int64 `json:"limit_bytes"`
	UsedBytes  int64 `json:"used_bytes"`
	// MountedBy lists the sandboxes that mount it; a mounted volume
	// cannot be deleted.
	MountedBy []string `json:"mounted_by,omitempty"`
}

// VolumeList is the body of GET /v1/volumes.
type VolumeList struct {
	Volumes []Volume `json:"volumes"`
}
