package policy

import (
	"fmt"
	"regexp"
	"strconv"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

// ParseError is a syntax error in a policy document.
type ParseError struct {
	Line, Column int // 1-based; 0 if unknown
	Msg          string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("policy parse error at %d:%d: %s", e.Line, e.Column, e.Msg)
}

// ValidationError is a policy that parses but does not fit the schema.
type ValidationError struct {
	PolicyID     string
	Line, Column int
	Msg          string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("policy %s at %d:%d does not match the schema: %s", e.PolicyID, e.Line, e.Column, e.Msg)
}

// posRE finds the "<input>:LINE:COL" position cedar-go puts in its errors.
var posRE = regexp.MustCompile(`:(\d+):(\d+)`)

func newParseError(err error) *ParseError {
	pe := &ParseError{Msg: err.Error()}
	if m := posRE.FindStringSubmatch(err.Error()); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
		pe.Column, _ = strconv.Atoi(m[2])
	}
	return pe
}

// compiled is a parsed, validated policy with its id.
type compiled struct {
	id         types.PolicyID
	policy     *cedar.Policy
	approvable bool
}

// Parsed describes one policy of a document.
type Parsed struct {
	ID         string
	Permit     bool
	Approvable bool
	Line       int
	Column     int
}

// Parse parses a policy document without checking it against the schema.
// Policies are named by their @id annotation or, lacking one, "policyN".
func Parse(src []byte) ([]Parsed, error) {
	cs, err := parse("policy.cedar", "", src)
	if err != nil {
		return nil, err
	}
	out := make([]Parsed, len(cs))
	for i, c := range cs {
		pos := c.policy.Position()
		out[i] = Parsed{ID: string(c.id), Permit: c.policy.Effect() == cedar.Permit, Approvable: c.approvable, Line: pos.Line, Column: pos.Column}
	}
	return out, nil
}

// Validate parses src and checks every policy against the schema.
func Validate(src []byte) error {
	v, err := newValidator(schemaText)
	if err != nil {
		return err
	}
	_, err = parseAndValidate(v, "policy.cedar", "", src)
	return err
}

func parse(file, prefix string, src []byte) ([]compiled, error) {
	list, err := cedar.NewPolicyListFromBytes(file, src)
	if err != nil {
		return nil, newParseError(err)
	}
	seen := map[types.PolicyID]bool{}
	out := make([]compiled, 0, len(list))
	for i, p := range list {
		ann := p.Annotations()
		id := types.PolicyID(prefix + "policy" + strconv.Itoa(i))
		if v, ok := ann["id"]; ok {
			if v == "" {
				pos := p.Position()
				return nil, &ParseError{Line: pos.Line, Column: pos.Column, Msg: "empty @id"}
			}
			id = types.PolicyID(prefix + string(v))
		}
		if seen[id] {
			pos := p.Position()
			return nil, &ParseError{Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf("duplicate @id %q", id)}
		}
		seen[id] = true
		approvable := ann["approvable"] == "true"
		if approvable && p.Effect() != cedar.Forbid {
			pos := p.Position()
			return nil, &ParseError{Line: pos.Line, Column: pos.Column, Msg: "@approvable applies only to forbid policies"}
		}
		out = append(out, compiled{id: id, policy: p, approvable: approvable})
	}
	return out, nil
}

func parseAndValidate(v *validator, file, prefix string, src []byte) ([]compiled, error) {
	cs, err := parse(file, prefix, src)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if err := v.policy(c); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// validator checks policies against the schema with cedar-go's experimental
// validator (x/exp/schema/validate), in strict mode.
type validator struct {
	v *validate.Validator
}

func newValidator(text []byte) (*validator, error) {
	var s schema.Schema
	if err := s.UnmarshalCedar(text); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	r, err := s.Resolve()
	if err != nil {
		return nil, fmt.Errorf("resolve schema: %w", err)
	}
	return &validator{v: validate.New(r)}, nil
}

func (v *validator) policy(c compiled) (err error) {
	defer func() {
		// The validator is experimental; never let it take the daemon down.
		if r := recover(); r != nil {
			err = fmt.Errorf("validate policy %s: validator panic: %v", c.id, r)
		}
	}()
	if verr := v.v.Policy(string(c.id), (*xast.Policy)(c.policy.AST())); verr != nil {
		pos := c.policy.Position()
		return &ValidationError{PolicyID: string(c.id), Line: pos.Line, Column: pos.Column, Msg: verr.Error()}
	}
	return nil
}
