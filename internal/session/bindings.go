package session

// Bindings are what a Manager calls that is built after it. The session
// manager and the platform services form a cycle: the toolbox, sandboxes
// and security read agents and call sessions through the Manager, and
// sessions call them back (env.tools, env.sandbox, fetch). The composition
// root therefore builds the Manager first (New opens its buckets and starts
// nothing), builds the parts that use it, and hands them over once, as one
// value, to Start. Nothing is bound after Start; the zero value is a manager
// whose sessions have no outbound fetch, no env services, no identity, no
// label flow, no deploy authorization and no observer.
type Bindings struct {
	// Fetcher carries outbound fetch(); nil refuses every fetch.
	Fetcher Fetcher
	// Services are the env.<name> services by name; a missing one answers
	// a NotSupportedError.
	Services map[string]Service
	// DeployAuthorizer, if set, authorizes every Deploy inside its
	// compare-and-set (deploy.go); nil authorizes every deployer.
	DeployAuthorizer DeployAuthorizer
	// Identity gives activating sessions their workload identity
	// (identity.go); nil: sessions have no workload identity.
	Identity Identity
	// Flow moves information-flow labels across calls (flow.go); nil:
	// labels do not follow calls.
	Flow Flow
	// Observer sees every call's outcome (observe.go); nil: nobody does.
	Observer Observer
	// Owner says which sessions this node may run (owner.go); nil: all.
	// If it also implements Remote, Call forwards a request for a
	// session another member owns (remote.go).
	Owner Owner
}

func (m *Manager) service(name string) Service {
	return m.b.Services[name]
}
