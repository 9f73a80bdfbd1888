package sandbox

import "strings"

// Ownership is who a sandbox belongs to and what it may reach, as stamped
// in its reserved labels (LabelOwner, LabelSession, LabelEgress,
// LabelSecrets). The labels are the one source: the Manager's record of a
// live sandbox carries them, so nothing else has to be kept in step.
type Ownership struct {
	ID      string
	Owner   string   // SPIFFE ID of the principal that owns the sandbox
	Agent   string   // set with Session for a session's sandbox
	Session string   // the creating session, if any
	Egress  []string // host patterns the sandbox may reach
	Secrets []string // secret names the egress proxy may substitute
}

// OwnershipOf reads the ownership of sandbox id from its labels.
func OwnershipOf(id string, labels map[string]string) Ownership {
	o := Ownership{ID: id, Owner: labels[LabelOwner]}
	if s := labels[LabelSession]; s != "" {
		o.Agent, o.Session, _ = strings.Cut(s, "/")
	}
	split := func(v string) []string {
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	o.Egress, o.Secrets = split(labels[LabelEgress]), split(labels[LabelSecrets])
	return o
}

// Own stamps owner (and the creating session of agent, if any) on spec.
// Every creator calls it before Manager.Create: the Manager's Admission
// refuses a sandbox nobody owns.
func Own(spec *Spec, owner, agent, session string) {
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[LabelOwner] = owner
	if session != "" {
		spec.Labels[LabelSession] = agent + "/" + session
	}
}

// OwnershipOf returns the ownership of a live sandbox.
func (m *Manager) OwnershipOf(id string) (Ownership, bool) {
	info, err := m.Info(id)
	if err != nil {
		return Ownership{}, false
	}
	return OwnershipOf(id, info.Labels), true
}
