// Package httpsig implements HTTP Message Signatures (RFC 9421) for the
// front door: parsing Signature-Input and Signature, building the signature
// base from a request (or a response and its request), verifying and making
// Ed25519 signatures, and checking Content-Digest (RFC 9530). It knows no
// profile: which components a signature must cover, which tag it carries
// and where its key comes from are decided by its callers (Web Bot Auth in
// internal/gateway/webbotauth). Structured fields are parsed with
// github.com/dunglas/httpsfv.
package httpsig

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/dunglas/httpsfv"
)

// Limits on what Parse accepts, so a hostile header cannot make the verifier
// do unbounded work.
const (
	MaxSignatures    = 8
	MaxComponents    = 32
	MaxFieldBytes    = 8 << 10 // Signature-Input or Signature, all lines
	MaxSignatureSize = 1 << 10 // decoded signature bytes
)

// ErrMalformed marks a Signature-Input or Signature field that cannot be
// parsed or breaks RFC 9421's structure.
var ErrMalformed = errors.New("malformed signature field")

// ErrComponent marks a covered component that cannot be produced from the
// message (absent header, unknown derived component, bad parameters).
var ErrComponent = errors.New("signature component")

// ErrVerify marks a signature that does not verify.
var ErrVerify = errors.New("signature does not verify")

// Component is one covered component identifier: a lowercase field name
// or a derived component name starting with "@", with its parameters.
type Component struct {
	Name string
	// Key selects one member of a Dictionary field (;key="...").
	Key string
	// Name of a query parameter for @query-param (;name="...").
	QueryName string
	// SF re-serializes a structured field; BS wraps each line as a byte
	// sequence; Req takes the component from the request (responses only);
	// Tr takes it from trailers (not supported: refused).
	SF, BS, Req, Tr bool

	item httpsfv.Item // as parsed, for serialization in the base
}

// C builds a component identifier for signing.
func C(name string) Component { return Component{Name: name} }

// WithKey returns c selecting dictionary member key.
func (c Component) WithKey(key string) Component { c.Key = key; return c }

// WithReq returns c taken from the request of a response.
func (c Component) WithReq() Component { c.Req = true; return c }

// sfItem is the component identifier as a structured field Item.
func (c Component) sfItem() httpsfv.Item {
	if c.item.Value != nil {
		return c.item
	}
	p := httpsfv.NewParams()
	if c.Req {
		p.Add("req", true)
	}
	if c.SF {
		p.Add("sf", true)
	}
	if c.BS {
		p.Add("bs", true)
	}
	if c.Key != "" {
		p.Add("key", c.Key)
	}
	if c.QueryName != "" {
		p.Add("name", c.QueryName)
	}
	if c.Tr {
		p.Add("tr", true)
	}
	return httpsfv.Item{Value: c.Name, Params: p}
}

// String is the serialized identifier, e.g. "signature-agent";key="sig1".
func (c Component) String() string {
	s, err := httpsfv.Marshal(c.sfItem())
	if err != nil {
		return fmt.Sprintf("%q", c.Name)
	}
	return s
}

// Signature is one labelled signature: its Signature-Input member and its
// Signature member.
type Signature struct {
	Label      string
	Components []Component
	// The signature parameters. Has* report presence.
	Created, Expires       int64
	HasCreated, HasExpires bool
	Nonce, Alg, KeyID, Tag string
	// Value is the decoded signature.
	Value []byte

	params *httpsfv.Params // as parsed, order kept, for @signature-params
}

// Params returns the serialized @signature-params value.
func (s *Signature) Params() (string, error) {
	il := httpsfv.InnerList{Params: s.params}
	if il.Params == nil {
		il.Params = httpsfv.NewParams()
	}
	for _, c := range s.Components {
		il.Items = append(il.Items, c.sfItem())
	}
	out, err := httpsfv.Marshal(il)
	if err != nil {
		return "", fmt.Errorf("serialize signature parameters: %w: %w", ErrMalformed, err)
	}
	return out, nil
}

// Covers reports whether s covers a component with this name and key.
func (s *Signature) Covers(name, key string) bool {
	for _, c := range s.Components {
		if c.Name == name && c.Key == key && !c.Req {
			return true
		}
	}
	return false
}

// Parse reads every signature of a message from its Signature-Input and
// Signature fields. It returns no signatures and no error when neither
// field is present; every structural problem is an ErrMalformed error
// naming the field.
func Parse(h http.Header) ([]*Signature, error) {
	inLines, sigLines := h.Values("Signature-Input"), h.Values("Signature")
	if len(inLines) == 0 && len(sigLines) == 0 {
		return nil, nil
	}
	if len(inLines) == 0 || len(sigLines) == 0 {
		return nil, fmt.Errorf("%w: Signature-Input and Signature must come together", ErrMalformed)
	}
	if size(inLines) > MaxFieldBytes || size(sigLines) > MaxFieldBytes {
		return nil, fmt.Errorf("%w: Signature-Input or Signature is longer than %d bytes", ErrMalformed, MaxFieldBytes)
	}
	inputs, err := httpsfv.UnmarshalDictionary(inLines)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature-Input is not a structured dictionary: %w", ErrMalformed, err)
	}
	sigs, err := httpsfv.UnmarshalDictionary(sigLines)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature is not a structured dictionary: %w", ErrMalformed, err)
	}
	labels := inputs.Names()
	if len(labels) > MaxSignatures {
		return nil, fmt.Errorf("%w: %d signatures; at most %d are read", ErrMalformed, len(labels), MaxSignatures)
	}
	out := make([]*Signature, 0, len(labels))
	for _, label := range labels {
		m, _ := inputs.Get(label)
		il, ok := m.(httpsfv.InnerList)
		if !ok {
			return nil, fmt.Errorf("%w: Signature-Input member %q is not an inner list", ErrMalformed, label)
		}
		s, err := parseInput(label, il)
		if err != nil {
			return nil, err
		}
		sm, ok := sigs.Get(label)
		if !ok {
			return nil, fmt.Errorf("%w: Signature has no member %q for its Signature-Input", ErrMalformed, label)
		}
		it, ok := sm.(httpsfv.Item)
		if !ok {
			return nil, fmt.Errorf("%w: Signature member %q is not an item", ErrMalformed, label)
		}
		b, ok := it.Value.([]byte)
		if !ok {
			return nil, fmt.Errorf("%w: Signature member %q is not a byte sequence", ErrMalformed, label)
		}
		if len(b) == 0 || len(b) > MaxSignatureSize {
			return nil, fmt.Errorf("%w: Signature member %q is %d bytes", ErrMalformed, label, len(b))
		}
		s.Value = b
		out = append(out, s)
	}
	return out, nil
}

func size(lines []string) int {
	n := 0
	for _, l := range lines {
		n += len(l) + 2
	}
	return n
}

func parseInput(label string, il httpsfv.InnerList) (*Signature, error) {
	if len(il.Items) > MaxComponents {
		return nil, fmt.Errorf("%w: signature %q covers %d components; at most %d", ErrMalformed, label, len(il.Items), MaxComponents)
	}
	s := &Signature{Label: label, params: il.Params}
	seen := make(map[string]bool, len(il.Items))
	for _, it := range il.Items {
		c, err := parseComponent(it)
		if err != nil {
			return nil, fmt.Errorf("signature %q: %w", label, err)
		}
		id := c.String()
		if seen[id] {
			return nil, fmt.Errorf("%w: signature %q covers %s twice", ErrMalformed, label, id)
		}
		seen[id] = true
		s.Components = append(s.Components, c)
	}
	if il.Params == nil {
		return s, nil
	}
	for _, name := range il.Params.Names() {
		v, _ := il.Params.Get(name)
		var ok bool
		switch name {
		case "created":
			s.Created, ok = v.(int64)
			s.HasCreated = true
		case "expires":
			s.Expires, ok = v.(int64)
			s.HasExpires = true
		case "nonce":
			s.Nonce, ok = v.(string)
		case "alg":
			s.Alg, ok = v.(string)
		case "keyid":
			s.KeyID, ok = v.(string)
		case "tag":
			s.Tag, ok = v.(string)
		default:
			ok = true // other parameters are signed but carry no meaning here
		}
		if !ok {
			return nil, fmt.Errorf("%w: signature %q parameter %s has the wrong type", ErrMalformed, label, name)
		}
	}
	return s, nil
}

func parseComponent(it httpsfv.Item) (Component, error) {
	name, ok := it.Value.(string)
	if !ok {
		return Component{}, fmt.Errorf("%w: a component identifier is not a string", ErrMalformed)
	}
	if name == "" || strings.ToLower(name) != name {
		return Component{}, fmt.Errorf("%w: component %q must be a non-empty lowercase name", ErrMalformed, name)
	}
	c := Component{Name: name, item: it}
	if it.Params == nil {
		return c, nil
	}
	for _, p := range it.Params.Names() {
		v, _ := it.Params.Get(p)
		var ok bool
		switch p {
		case "key":
			c.Key, ok = v.(string)
		case "name":
			c.QueryName, ok = v.(string)
		case "sf":
			c.SF, ok = v.(bool)
		case "bs":
			c.BS, ok = v.(bool)
		case "req":
			c.Req, ok = v.(bool)
		case "tr":
			c.Tr, ok = v.(bool)
		default:
			return Component{}, fmt.Errorf("%w: component %q has unknown parameter %q", ErrMalformed, name, p)
		}
		if !ok {
			return Component{}, fmt.Errorf("%w: component %q parameter %q has the wrong type", ErrMalformed, name, p)
		}
	}
	return c, nil
}
