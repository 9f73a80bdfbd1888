package volume

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// FuzzResolve feeds mount lists, as a create, restore or env.sandbox.run
// would send them, through Resolve: anything accepted is alice's own
// volumes at checked, non-overlapping paths, held until released (a
// delete is refused meanwhile); anything refused is a 4xx problem, and
// nothing stays held.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{`[{"name":"data","path":"/workspace/data"}]`, `[{"name":"data","path":"/mnt/d","read_only":true},{"name":"ref","path":"/mnt/r"}]`,
		`[{"name":"data","path":"/proc/x"}]`, `[{"name":"../x","path":"/mnt/x"}]`, `[{"name":"nope","path":"/mnt/x"}]`, `[{"name":"other","path":"/mnt/x"}]`,
		`[{"name":"data","path":"/mnt/a"},{"name":"data","path":"/mnt/b"}]`, `[{"name":"data","path":"/mnt/a"},{"name":"ref","path":"/mnt/a/b"}]`,
		`[{"name":"data","path":"/workspace/../etc"}]`, `[{"name":"data","path":""}]`, `[]`, `null`} {
		f.Add(s)
	}
	s, err := Open(f.TempDir(), Limits{MaxBytes: 1 << 20, MaxPerOwner: 4})
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []string{"data", "ref"} {
		if _, err := s.Create(alice, n, 0); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := s.Create(bob, "other", 0); err != nil {
		f.Fatal(err)
	}
	denyOther := func(_ context.Context, owner, name string) error {
		if name == "other" {
			return api.Errorf(api.KindForbidden, "volume %s", name)
		}
		return nil
	}
	f.Fuzz(func(t *testing.T, body string) {
		var ms []Mount
		if json.Unmarshal([]byte(body), &ms) != nil {
			return
		}
		vols, release, err := s.Resolve(t.Context(), alice, ms, denyOther)
		if release == nil {
			t.Fatal("nil release")
		}
		defer release()
		if err != nil {
			if p := api.AsProblem(err); p == nil || p.Status < 400 || p.Status >= 500 {
				t.Fatalf("refusal %v is not a 4xx problem", err)
			}
			if len(s.holds) != 0 {
				t.Fatalf("a refusal left holds %v", s.holds)
			}
			return
		}
		if len(vols) != len(ms) || sandbox.CheckMounts(vols) != nil {
			t.Fatalf("accepted %s as %+v", body, vols)
		}
		for _, v := range vols {
			if !s.Exists(alice, v.Name) || v.HostDir == "" {
				t.Fatalf("accepted a volume that is not alice's: %+v", v)
			}
			if err := s.Delete(alice, v.Name); !errors.Is(err, ErrInUse) {
				t.Fatalf("delete of a held volume: %v", err)
			}
		}
	})
}
