package config

import (
	"strings"
	"testing"
)

// Volume limits out of range, or not numbers, are refused naming the field.
func TestVolumeLimitsClass(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"AGENTCLOUD_VOLUMES_MAX_BYTES": "10"}, "volumes.max_bytes"},
		{map[string]string{"AGENTCLOUD_VOLUMES_MAX_BYTES": "2000000000000"}, "volumes.max_bytes"},
		{map[string]string{"AGENTCLOUD_VOLUMES_MAX_BYTES": "lots"}, "AGENTCLOUD_VOLUMES_MAX_BYTES"},
		{map[string]string{"AGENTCLOUD_VOLUMES_MAX_PER_OWNER": "0"}, "volumes.max_per_owner"},
		{map[string]string{"AGENTCLOUD_VOLUMES_MAX_PER_OWNER": "10001"}, "volumes.max_per_owner"},
		{map[string]string{"AGENTCLOUD_VOLUMES_MAX_PER_OWNER": "-1"}, "volumes.max_per_owner"},
	} {
		c0 := Default()
		errs := c0.loadVolumesEnv(func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
		errs = append(errs, c0.validateVolumes()...)
		if len(errs) == 0 || !strings.Contains(errs.Error(), c.want) {
			t.Errorf("%v: got %v, want an error naming %s", c.env, errs, c.want)
		}
	}
	c := Default()
	if errs := c.validateVolumes(); len(errs) != 0 {
		t.Fatalf("defaults refused: %v", errs)
	}
}
