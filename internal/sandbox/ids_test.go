package sandbox_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestSandboxIDNamesNodeClass: a Manager's ids name its node (long names
// by a tag that still fits the id limit), every one a valid sandbox id
// whose tag reads back; ids made outside a cluster carry none.
func TestSandboxIDNamesNodeClass(t *testing.T) {
	long := "n" + strings.Repeat("x", 62)
	for _, node := range []string{"n", "node-0", "a-b-c", strings.Repeat("y", 44), strings.Repeat("z", 45), long} {
		m, err := sandbox.NewManager(sandbox.ManagerConfig{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for range 50 {
			id := m.NewID()
			if p := api.CheckID("sandbox", api.IDSandbox, id); p != nil {
				t.Fatalf("node %q: id %q: %v", node, id, p)
			}
			tag, ok := sandbox.TagOf(id)
			if !ok || tag != sandbox.NodeTag(node) || seen[id] {
				t.Fatalf("node %q: id %q reads back %q %v (want %q, fresh)", node, id, tag, ok, sandbox.NodeTag(node))
			}
			seen[id] = true
		}
	}
	if sandbox.NodeTag(long) == sandbox.NodeTag(long[:62]+"w") {
		t.Error("two long names that share a prefix got one tag")
	}
	if _, ok := sandbox.TagOf(sandbox.NewID()); ok {
		t.Error("an id made outside a cluster names a node")
	}
	m, _ := sandbox.NewManager(sandbox.ManagerConfig{})
	if _, ok := sandbox.TagOf(m.NewID()); ok {
		t.Error("a Manager without a node names one")
	}
}

func FuzzTagOf(f *testing.F) {
	for _, s := range []string{"sb-node-0-0123456789abcdef", "sb-0123456789abcdef", "sb--0123456789abcdef", "sb-a-0123456789ABCDEF", "", "sb-", fmt.Sprintf("sb-%s-0123456789abcdef", strings.Repeat("a", 45))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		tag, ok := sandbox.TagOf(id)
		if !ok {
			return
		}
		if api.CheckID("node", api.IDNode, tag) != nil || !strings.HasPrefix(id, "sb-"+tag+"-") || len(id) > 64 {
			t.Fatalf("%q -> tag %q", id, tag)
		}
	})
}
