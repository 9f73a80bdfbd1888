package config

import "strconv"

// ImageConfig bounds sandbox image templates (internal/sandbox/image):
// what one image archive or directory may unpack to.
type ImageConfig struct {
	// MaxBytes caps an image's uncompressed bytes over all its layers (a
	// decompression bomb stops there).
	MaxBytes int64 `json:"max_bytes"`
	// MaxLayers caps an image's layer count.
	MaxLayers int `json:"max_layers"`
}

func defaultImages() ImageConfig { return ImageConfig{MaxBytes: 8 << 30, MaxLayers: 64} }

// loadImagesEnv merges AGENTCLOUD_IMAGES_MAX_BYTES and _MAX_LAYERS.
func (c *Config) loadImagesEnv(lookup func(string) (string, bool)) Errors {
	var errs Errors
	for name, set := range map[string]func(int64){
		"MAX_BYTES":  func(n int64) { c.Images.MaxBytes = n },
		"MAX_LAYERS": func(n int64) { c.Images.MaxLayers = int(n) },
	} {
		v, ok := lookup("AGENTCLOUD_IMAGES_" + name)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_IMAGES_" + name, v, "want a whole number"})
			continue
		}
		set(n)
	}
	return errs
}

// validateImages checks the image limits.
func (c Config) validateImages() Errors {
	var errs Errors
	if c.Images.MaxBytes < 1<<20 || c.Images.MaxBytes > 1<<40 {
		errs = append(errs, FieldError{"images.max_bytes", strconv.FormatInt(c.Images.MaxBytes, 10), "want from 1048576 to 1099511627776 bytes"})
	}
	// A sandbox's setup message carries one mount per layer (at most 129).
	if c.Images.MaxLayers < 1 || c.Images.MaxLayers > 128 {
		errs = append(errs, FieldError{"images.max_layers", strconv.Itoa(c.Images.MaxLayers), "want from 1 to 128"})
	}
	return errs
}
