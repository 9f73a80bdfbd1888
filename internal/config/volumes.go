package config

import "strconv"

// VolumeConfig bounds named sandbox volumes (internal/sandbox/volume).
type VolumeConfig struct {
	// MaxBytes caps one volume's disk use (allocated blocks), and is the
	// size of a volume created without one.
	MaxBytes int64 `json:"max_bytes"`
	// MaxPerOwner caps the volumes one principal may own.
	MaxPerOwner int `json:"max_per_owner"`
}

func defaultVolumes() VolumeConfig { return VolumeConfig{MaxBytes: 1 << 30, MaxPerOwner: 16} }

// loadVolumesEnv merges AGENTCLOUD_VOLUMES_MAX_BYTES and _MAX_PER_OWNER.
func (c *Config) loadVolumesEnv(lookup func(string) (string, bool)) Errors {
	var errs Errors
	for name, set := range map[string]func(int64){
		"MAX_BYTES":     func(n int64) { c.Volumes.MaxBytes = n },
		"MAX_PER_OWNER": func(n int64) { c.Volumes.MaxPerOwner = int(n) },
	} {
		v, ok := lookup("AGENTCLOUD_VOLUMES_" + name)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_VOLUMES_" + name, v, "want a whole number"})
			continue
		}
		set(n)
	}
	return errs
}

// validateVolumes checks the volume limits.
func (c Config) validateVolumes() Errors {
	var errs Errors
	if c.Volumes.MaxBytes < 1<<20 || c.Volumes.MaxBytes > 1<<40 {
		errs = append(errs, FieldError{"volumes.max_bytes", strconv.FormatInt(c.Volumes.MaxBytes, 10), "want from 1048576 to 1099511627776 bytes"})
	}
	if c.Volumes.MaxPerOwner < 1 || c.Volumes.MaxPerOwner > 10000 {
		errs = append(errs, FieldError{"volumes.max_per_owner", strconv.Itoa(c.Volumes.MaxPerOwner), "want from 1 to 10000"})
	}
	return errs
}
