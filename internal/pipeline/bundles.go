package pipeline

import (
	"context"

	"github.com/agentcloud/agentcloud/internal/bundle"
)

// bundleCacheSize is how many versions' files the runner keeps in memory:
// a run reads its version in validate and again in test (and its parent
// in validate), and a version's files never change (content-addressed),
// so the second read need not fetch and unpack it again.
const bundleCacheSize = 4

// versionBundle is Versions.VersionBundle through a small cache.
func (r *Runner) versionBundle(ctx context.Context, agent, digest string) (*bundle.Bundle, error) {
	key := agent + "\x00" + digest
	r.bmu.Lock()
	for _, e := range r.bundles {
		if e.key == key {
			r.bmu.Unlock()
			return e.b, nil
		}
	}
	r.bmu.Unlock()
	b, err := r.cfg.Versions.VersionBundle(ctx, agent, digest)
	if err != nil {
		return nil, err
	}
	r.bmu.Lock()
	r.bundles = append(r.bundles, cachedBundle{key, b})
	if len(r.bundles) > bundleCacheSize {
		r.bundles = r.bundles[1:]
	}
	r.bmu.Unlock()
	return b, nil
}

type cachedBundle struct {
	key string
	b   *bundle.Bundle
}
