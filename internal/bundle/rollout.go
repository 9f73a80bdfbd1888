package bundle

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RolloutStep is one step of a gradual rollout: the share of new sessions
// the new version gets, and how long that share holds (while the new
// version's error rate and latency are compared with the stable one's)
// before the next step.
type RolloutStep struct {
	Percent      int `json:"percent"`
	PauseSeconds int `json:"pause_seconds"`
}

// Pause returns the step's pause.
func (s RolloutStep) Pause() time.Duration { return time.Duration(s.PauseSeconds) * time.Second }

// Rollout is the manifest's optional "rollout" section: the steps a new
// version of the agent is rolled out in, instead of the node's default.
type Rollout struct {
	Steps []RolloutStep `json:"steps"`
}

// Limits of rollout steps, the same for the manifest and the node's
// default (config rollout_steps).
const (
	MaxRolloutSteps = 20
	// MaxRolloutPauseSeconds is a week.
	MaxRolloutPauseSeconds = 7 * 24 * 3600
	// maxStepsText bounds the text form of a step list.
	maxStepsText = 1024
)

var (
	rolloutFields = []string{"steps"}
	stepFields    = []string{"percent", "pause_seconds"}
	percentRange  = intRange{0, 1, 100}
	pauseRange    = intRange{0, 0, MaxRolloutPauseSeconds}
)

// StepsError is a problem with a list of rollout steps: Field is relative
// to the list ("[1].percent", or "" for the list as a whole).
type StepsError struct {
	Field, Problem, Fix string
}

func (e *StepsError) Error() string {
	s := e.Problem + "; " + e.Fix
	if e.Field != "" {
		s = "steps" + e.Field + ": " + s
	}
	return s
}

// CheckRolloutSteps checks a step list: 1 to MaxRolloutSteps steps, each
// percent from 1 to 100 and larger than the one before, the last one 100
// (a rollout ends with the new version serving every new session), each
// pause from 0 to MaxRolloutPauseSeconds.
func CheckRolloutSteps(steps []RolloutStep) *StepsError {
	const fix = `write steps such as [{"percent": 10, "pause_seconds": 300}, {"percent": 50, "pause_seconds": 600}, {"percent": 100}]`
	if len(steps) == 0 {
		return &StepsError{"", "is empty", fix}
	}
	if len(steps) > MaxRolloutSteps {
		return &StepsError{"", fmt.Sprintf("has %d steps, above the maximum %d", len(steps), MaxRolloutSteps), "merge some steps"}
	}
	for i, s := range steps {
		f := "[" + strconv.Itoa(i) + "]"
		switch {
		case s.Percent < 1 || s.Percent > 100:
			return &StepsError{f + ".percent", fmt.Sprintf("%d is outside 1 to 100", s.Percent), "use a share of new sessions from 1 to 100"}
		case i > 0 && s.Percent <= steps[i-1].Percent:
			return &StepsError{f + ".percent", fmt.Sprintf("%d is not above the step before (%d)", s.Percent, steps[i-1].Percent), "make each step's percent larger than the one before"}
		case s.PauseSeconds < 0 || s.PauseSeconds > MaxRolloutPauseSeconds:
			return &StepsError{f + ".pause_seconds", fmt.Sprintf("%d is outside 0 to %d", s.PauseSeconds, MaxRolloutPauseSeconds), "use a pause of at most a week"}
		}
	}
	if last := steps[len(steps)-1]; last.Percent != 100 {
		return &StepsError{"[" + strconv.Itoa(len(steps)-1) + "].percent", fmt.Sprintf("the last step is %d, not 100", last.Percent), "end with a step of 100 percent"}
	}
	return nil
}

// ParseRolloutSteps reads the text form of a step list (config
// rollout_steps): comma-separated steps PERCENT[%][:PAUSE], PAUSE a Go
// duration in whole seconds, e.g. "10%:5m,50%:10m,100%".
func ParseRolloutSteps(text string) ([]RolloutStep, error) {
	if len(text) > maxStepsText {
		return nil, &StepsError{"", fmt.Sprintf("is %d bytes, above the maximum %d", len(text), maxStepsText), "write fewer steps"}
	}
	if strings.TrimSpace(text) == "" {
		return nil, &StepsError{"", "is empty", `write steps such as "10%:5m,50%:10m,100%"`}
	}
	items := strings.Split(text, ",")
	if len(items) > MaxRolloutSteps {
		return nil, &StepsError{"", fmt.Sprintf("has %d steps, above the maximum %d", len(items), MaxRolloutSteps), "merge some steps"}
	}
	steps := make([]RolloutStep, 0, len(items))
	for i, item := range items {
		f := "[" + strconv.Itoa(i) + "]"
		pct, pause, hasPause := strings.Cut(strings.TrimSpace(item), ":")
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(pct), "%")))
		if err != nil {
			return nil, &StepsError{f + ".percent", fmt.Sprintf("%q is not a whole percent", clipText(pct)), `write PERCENT%[:PAUSE], e.g. "10%:5m"`}
		}
		s := RolloutStep{Percent: n}
		if hasPause {
			d, err := time.ParseDuration(strings.TrimSpace(pause))
			switch {
			case err != nil:
				return nil, &StepsError{f + ".pause_seconds", fmt.Sprintf("%q is not a duration", clipText(pause)), `write a duration such as "30s", "5m" or "1h"`}
			case d < 0 || d > MaxRolloutPauseSeconds*time.Second:
				return nil, &StepsError{f + ".pause_seconds", fmt.Sprintf("%s is outside 0 to 168h", d), "use a pause of at most a week"}
			case d%time.Second != 0:
				return nil, &StepsError{f + ".pause_seconds", fmt.Sprintf("%s is not a whole number of seconds", d), "round the pause to seconds"}
			}
			s.PauseSeconds = int(d / time.Second)
		}
		steps = append(steps, s)
	}
	if err := CheckRolloutSteps(steps); err != nil {
		return nil, err
	}
	return steps, nil
}

// FormatRolloutSteps is the text form ParseRolloutSteps reads.
func FormatRolloutSteps(steps []RolloutStep) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = strconv.Itoa(s.Percent) + "%"
		if s.PauseSeconds > 0 {
			parts[i] += ":" + s.Pause().String()
		}
	}
	return strings.Join(parts, ",")
}

func clipText(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// rollout decodes the manifest's optional rollout section.
func (p *parser) rollout(raw json.RawMessage) *Rollout {
	if isNull(raw) {
		return nil
	}
	const example = `write {"steps": [{"percent": 10, "pause_seconds": 300}, {"percent": 100}]} or leave it out for the node's default`
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		p.add("rollout", "got "+jsonKind(raw)+", want an object", example)
		return nil
	}
	for _, k := range p.ix.keys["rollout"] {
		if !slices.Contains(rolloutFields, k) {
			p.unknown(childPath("rollout", k), k, rolloutFields)
		}
	}
	rawSteps := obj["steps"]
	if isNull(rawSteps) {
		p.add("rollout.steps", "is required", example)
		return nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(rawSteps, &elems); err != nil {
		p.add("rollout.steps", "got "+jsonKind(rawSteps)+", want a list of steps", example)
		return nil
	}
	if len(elems) > MaxRolloutSteps {
		p.add("rollout.steps", fmt.Sprintf("has %d steps, above the maximum %d", len(elems), MaxRolloutSteps), "merge some steps")
		return nil
	}
	before := len(p.probs)
	steps := make([]RolloutStep, 0, len(elems))
	for i, e := range elems {
		path := "rollout.steps[" + strconv.Itoa(i) + "]"
		var so map[string]json.RawMessage
		if isNull(e) || json.Unmarshal(e, &so) != nil {
			p.add(path, "got "+jsonKind(e)+", want an object", `write {"percent": 10, "pause_seconds": 300}`)
			continue
		}
		for _, k := range p.ix.keys[path] {
			if !slices.Contains(stepFields, k) {
				p.unknown(childPath(path, k), k, stepFields)
			}
		}
		if isNull(so["percent"]) {
			p.add(path+".percent", "is required", `add "percent": 10 (the share of new sessions, 1 to 100)`)
			continue
		}
		steps = append(steps, RolloutStep{
			Percent:      p.int(path+".percent", so["percent"], percentRange),
			PauseSeconds: p.int(path+".pause_seconds", so["pause_seconds"], pauseRange),
		})
	}
	if len(p.probs) > before {
		return nil
	}
	if err := CheckRolloutSteps(steps); err != nil {
		p.add("rollout.steps"+err.Field, err.Problem, err.Fix)
		return nil
	}
	return &Rollout{Steps: steps}
}
