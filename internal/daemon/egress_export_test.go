package daemon

// EgressTestHooks loosen the egress proxy for this package's tests that
// need loopback upstreams under made-up names or their own upstream CA.
type EgressTestHooks = egressHooks

// SetEgressTestHooks installs h; call before Start.
func (d *Daemon) SetEgressTestHooks(h EgressTestHooks) { d.egressHooks = h }
