package sandbox

// Per-owner sandbox caps (caps.go): a Manager's Admission. Every way of making a sandbox (POST /v1/sandboxes,
// env.sandbox.run, the run_code tool) stamps an owner on its spec and goes
// through Manager.Create, which asks Caps under its lock: so no route
// can forget the caps, and concurrent creates by one owner cannot pass the
// count between them.
//
// For an owner that is not an administrator: each limit (CPUs, memory,
// disk, pids) and the lifetime (timeout at creation, and each extension)
// must be within its cap (sandbox_max_*), or the request is refused with a
// validation problem that names the field and the cap; an omitted value
// whose default is over the cap gets the cap instead. The live sandboxes of
// one owner (those being created and failed ones included) are at most
// sandbox_max_per_owner (429). Administrators have no caps.

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// DefaultTimeout is the lifetime of a sandbox created without one.
const DefaultTimeout = 30 * time.Minute

// Caps implements Admission with per-owner caps; a cap of zero or less is
// no cap.
type Caps struct {
	// Exempt reports whether an owner has no caps (an administrator).
	Exempt   func(owner string) bool
	PerOwner int // live sandboxes of one owner (sandbox_max_per_owner)
	CPUs     float64
	MemoryMB int
	DiskMB   int
	Pids     int
	Timeout  time.Duration // lifetime at creation and of each extension
}

var _ Admission = Caps{}

func (c Caps) exempt(owner string) bool { return c.Exempt != nil && c.Exempt(owner) }

// AdmitCreate implements Admission.
func (c Caps) AdmitCreate(spec *Spec, live []Info) error {
	owner := spec.Labels[LabelOwner]
	if owner == "" {
		// Every creator stamps one (Own); a sandbox nobody owns
		// could be neither capped nor reached through policy.
		return api.Errorf(api.KindInternal, "sandbox without an owner")
	}
	if c.exempt(owner) {
		return nil
	}
	var errs []api.FieldError
	over := func(field, setting string, asked, limit, unit string) {
		errs = append(errs, api.FieldError{Field: field, Detail: fmt.Sprintf(
			"%s%s is over the cap of %s%s for one sandbox of a user (%s); ask for at most %s%s, or have an administrator create it",
			asked, unit, limit, unit, setting, limit, unit)})
	}
	// A value of zero or less means "the default" (Limits.WithDefaults,
	// the Manager's default timeout), so it is checked as an omitted one.
	l, def := &spec.Limits, DefaultLimits
	if math.IsNaN(l.CPUs) || math.IsInf(l.CPUs, 0) {
		errs = append(errs, api.FieldError{Field: "limits.cpus", Detail: "must be a number of cores, e.g. 0.5"})
	} else if c.CPUs > 0 {
		switch {
		case l.CPUs <= 0 && def.CPUs > c.CPUs:
			l.CPUs = c.CPUs
		case l.CPUs > c.CPUs:
			over("limits.cpus", "sandbox_max_cpus", ftoa(l.CPUs), ftoa(c.CPUs), " cores")
		}
	}
	for _, lim := range []struct {
		v           *int
		def, max    int
		field, name string
		unit        string
	}{
		{&l.MemoryMB, def.MemoryMB, c.MemoryMB, "limits.memory_mb", "sandbox_max_memory_mb", " MiB"},
		{&l.DiskMB, def.DiskMB, c.DiskMB, "limits.disk_mb", "sandbox_max_disk_mb", " MiB"},
		{&l.Pids, def.Pids, c.Pids, "limits.pids", "sandbox_max_pids", ""},
	} {
		if lim.max <= 0 {
			continue
		}
		switch {
		case *lim.v <= 0 && lim.def > lim.max:
			*lim.v = lim.max
		case *lim.v > lim.max:
			over(lim.field, lim.name, strconv.Itoa(*lim.v), strconv.Itoa(lim.max), lim.unit)
		}
	}
	if c.Timeout > 0 {
		switch {
		case spec.Timeout <= 0 && DefaultTimeout > c.Timeout:
			spec.Timeout = c.Timeout
		case spec.Timeout > c.Timeout:
			over("timeout_s", "sandbox_max_timeout", ftoa(spec.Timeout.Seconds()), ftoa(c.Timeout.Seconds()), " s")
		}
	}
	if len(errs) > 0 {
		p := api.Errorf(api.KindValidation, "invalid %s: %s", errs[0].Field, errs[0].Detail)
		if len(errs) == 1 {
			p.Field = errs[0].Field
		}
		p.Errors = errs
		return p
	}
	if c.PerOwner > 0 {
		n := 0
		for _, info := range live {
			if info.Labels[LabelOwner] == owner {
				n++
			}
		}
		if n >= c.PerOwner {
			return api.Errorf(api.KindRateLimited,
				"%s already has %d live sandboxes, the most one owner may have (sandbox_max_per_owner); delete one (agentcloud sandbox rm ID) or wait for one to expire", owner, n)
		}
	}
	return nil
}

// AdmitExtend implements Admission: an extension is a new lifetime
// from now, under the same cap as at creation.
func (c Caps) AdmitExtend(info Info, d time.Duration) error {
	if c.Timeout <= 0 || d <= c.Timeout || c.exempt(info.Labels[LabelOwner]) {
		return nil
	}
	return api.FieldErrorf(api.KindValidation, "timeout_s",
		"%s s is over the cap of %s s for one sandbox of a user (sandbox_max_timeout); extend by at most %s s at a time, or have an administrator do it",
		ftoa(d.Seconds()), ftoa(c.Timeout.Seconds()), ftoa(c.Timeout.Seconds()))
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
