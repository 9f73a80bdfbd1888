package policy

import (
	"fmt"

	cedar "github.com/cedar-policy/cedar-go"
)

// Integrity says whether a session has read untrusted input. It only falls.
type Integrity uint8

// Integrity levels, most trusted first. The zero value is Trusted.
const (
	Trusted Integrity = iota
	Untrusted
)

func (i Integrity) String() string {
	if i == Untrusted {
		return "untrusted"
	}
	return "trusted"
}

// ParseIntegrity parses "trusted" or "untrusted".
func ParseIntegrity(s string) (Integrity, error) {
	switch s {
	case "trusted":
		return Trusted, nil
	case "untrusted":
		return Untrusted, nil
	}
	return 0, fmt.Errorf("integrity %q: want trusted or untrusted", s)
}

// Confidentiality says how sensitive the data a session holds is. It only
// rises.
type Confidentiality uint8

// Confidentiality levels, least sensitive first. The zero value is Public.
const (
	Public Confidentiality = iota
	Private
	SecretData
)

func (c Confidentiality) String() string {
	switch c {
	case Private:
		return "private"
	case SecretData:
		return "secret"
	}
	return "public"
}

// ParseConfidentiality parses "public", "private" or "secret".
func ParseConfidentiality(s string) (Confidentiality, error) {
	switch s {
	case "public":
		return Public, nil
	case "private":
		return Private, nil
	case "secret":
		return SecretData, nil
	}
	return 0, fmt.Errorf("confidentiality %q: want public, private or secret", s)
}

// Labels are a session's information-flow labels. The zero value (trusted,
// public) is a fresh session. Labels are values: the operations return new
// labels and never move a label the wrong way, so a session's labels can
// only become more restrictive.
type Labels struct {
	Integrity       Integrity
	Confidentiality Confidentiality
}

// RaiseConfidentiality returns l with confidentiality at least c.
func (l Labels) RaiseConfidentiality(c Confidentiality) Labels {
	if c > l.Confidentiality && c <= SecretData {
		l.Confidentiality = c
	}
	return l
}

// LowerIntegrity returns l with integrity at most i.
func (l Labels) LowerIntegrity(i Integrity) Labels {
	if i > l.Integrity && i <= Untrusted {
		l.Integrity = i
	}
	return l
}

// Join returns the labels of a session that has seen both l and o.
func (l Labels) Join(o Labels) Labels {
	return l.RaiseConfidentiality(o.Confidentiality).LowerIntegrity(o.Integrity)
}

// Trifecta reports whether l holds sensitive data and untrusted input, the
// two legs that make an outbound channel dangerous.
func (l Labels) Trifecta() bool {
	return l.Confidentiality >= Private && l.Integrity == Untrusted
}

func (l Labels) String() string { return l.Integrity.String() + "/" + l.Confidentiality.String() }

// Context keys the labels occupy in the Cedar request context.
const (
	ContextIntegrity       = "integrity"
	ContextConfidentiality = "confidentiality"
)

var (
	integrityValues       = [...]cedar.String{"trusted", "untrusted"}
	confidentialityValues = [...]cedar.String{"public", "private", "secret"}
)

// record maps labels (and extra keys, which the labels override) into the
// Cedar context: {integrity: "trusted"|"untrusted", confidentiality:
// "public"|"private"|"secret", ...extra}.
func (l Labels) record(extra cedar.RecordMap) cedar.Record {
	m := make(cedar.RecordMap, len(extra)+2)
	for k, v := range extra {
		m[k] = v
	}
	m[ContextIntegrity] = integrityValues[min(int(l.Integrity), 1)]
	m[ContextConfidentiality] = confidentialityValues[min(int(l.Confidentiality), 2)]
	return cedar.NewRecord(m)
}
