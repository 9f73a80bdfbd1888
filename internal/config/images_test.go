package config

import (
	"strings"
	"testing"
)

// Image limits out of range, or not numbers, are refused naming the field.
func TestImageLimitsClass(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"AGENTCLOUD_IMAGES_MAX_BYTES": "10"}, "images.max_bytes"},
		{map[string]string{"AGENTCLOUD_IMAGES_MAX_BYTES": "lots"}, "AGENTCLOUD_IMAGES_MAX_BYTES"},
		{map[string]string{"AGENTCLOUD_IMAGES_MAX_LAYERS": "0"}, "images.max_layers"},
		{map[string]string{"AGENTCLOUD_IMAGES_MAX_LAYERS": "129"}, "images.max_layers"},
		{map[string]string{"AGENTCLOUD_IMAGES_MAX_LAYERS": "-1"}, "images.max_layers"},
	} {
		c0 := Default()
		errs := c0.loadImagesEnv(func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
		errs = append(errs, c0.validateImages()...)
		if len(errs) == 0 || !strings.Contains(errs.Error(), c.want) {
			t.Errorf("%v: got %v, want an error naming %s", c.env, errs, c.want)
		}
	}
	c := Default()
	if errs := c.validateImages(); len(errs) != 0 {
		t.Fatalf("defaults refused: %v", errs)
	}
}
