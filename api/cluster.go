package api

// ClusterStatus is GET /v1/cluster/status: the cluster as the node that
// answers sees it.
type ClusterStatus struct {
	// Cluster is the cluster's name; Node the answering member.
	Cluster string `json:"cluster"`
	Node    string `json:"node"`
	// Partitions is how many partitions sessions hash into; Unowned how
	// many have no owner right now (a hand-off or failover in progress).
	Partitions int `json:"partitions"`
	Unowned    int `json:"unowned"`
	// Replicas is how many copies of each bucket the store keeps.
	Replicas int             `json:"replicas"`
	Members  []ClusterMember `json:"members"`
}

// ClusterMember is one member of a cluster.
type ClusterMember struct {
	Node string `json:"node"`
	// API is the member's API address; Peer where it takes forwarded
	// session requests.
	API     string `json:"api,omitempty"`
	Peer    string `json:"peer,omitempty"`
	Version string `json:"version,omitempty"`
	// Healthy: its heartbeat is current. Draining: it is handing its
	// partitions off (agentcloud node drain).
	Healthy  bool `json:"healthy"`
	Draining bool `json:"draining,omitempty"`
	// Partitions is how many partitions it owns.
	Partitions int `json:"partitions"`
}

// NodeDrain is the result of POST /v1/node/drain.
type NodeDrain struct {
	Node string `json:"node"`
	// Partitions is how many partitions it still owns (0 once drained).
	Partitions int `json:"partitions"`
}
