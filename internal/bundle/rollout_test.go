package bundle

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var stepsTextCases = []struct {
	in    string
	want  []RolloutStep
	field string // of the error; "-" for valid input
}{
	{"10%:5m,50%:10m,100%", []RolloutStep{{10, 300}, {50, 600}, {100, 0}}, "-"},
	{" 1 : 1s , 100 % : 168h ", []RolloutStep{{1, 1}, {100, 604800}}, "-"},
	{"100", []RolloutStep{{100, 0}}, "-"},
	{"100%:0s", []RolloutStep{{100, 0}}, "-"},
	{"", nil, ""},
	{"   ", nil, ""},
	{"10%:5m,50%", nil, "[1].percent"},
	{"0%,100%", nil, "[0].percent"},
	{"50%,20%,100%", nil, "[1].percent"},
	{"101%", nil, "[0].percent"},
	{"-10%,100%", nil, "[0].percent"},
	{"ten%,100%", nil, "[0].percent"},
	{"10%:5,100%", nil, "[0].pause_seconds"},
	{"10%:-1s,100%", nil, "[0].pause_seconds"},
	{"10%:169h,100%", nil, "[0].pause_seconds"},
	{"10%:1.5s,100%", nil, "[0].pause_seconds"},
	{"10%:5m:3,100%", nil, "[0].pause_seconds"},
	{"10%,,100%", nil, "[1].percent"},
	{strings.Repeat("1%,", 20) + "100%", nil, ""},
	{strings.Repeat(" ", 2000), nil, ""},
}

// TestRolloutStepsText covers the text form of step lists (config
// rollout_steps): valid lists, and every way a list is refused names the
// step and field.
func TestRolloutStepsText(t *testing.T) {
	for _, tc := range stepsTextCases {
		got, err := ParseRolloutSteps(tc.in)
		if tc.field == "-" {
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
				continue
			}
			back, err := ParseRolloutSteps(FormatRolloutSteps(got))
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Errorf("%q: format %q parses to %v, %v", tc.in, FormatRolloutSteps(got), back, err)
			}
			continue
		}
		var se *StepsError
		if !errors.As(err, &se) {
			t.Errorf("%q: got %v, %v; want a *StepsError", tc.in, got, err)
			continue
		}
		if se.Field != tc.field || se.Problem == "" || se.Fix == "" {
			t.Errorf("%q: error %+v; want field %q with problem and fix", tc.in, se, tc.field)
		}
	}
}

// FuzzParseRolloutSteps checks that the step parser never panics, that
// whatever it accepts passes CheckRolloutSteps and survives formatting.
func FuzzParseRolloutSteps(f *testing.F) {
	for _, tc := range stepsTextCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		steps, err := ParseRolloutSteps(in)
		if err != nil {
			var se *StepsError
			if !errors.As(err, &se) || se.Problem == "" || se.Fix == "" {
				t.Fatalf("error %v is not a described *StepsError", err)
			}
			return
		}
		if err := CheckRolloutSteps(steps); err != nil {
			t.Fatalf("accepted %v which fails the check: %v", steps, err)
		}
		back, err := ParseRolloutSteps(FormatRolloutSteps(steps))
		if err != nil || !reflect.DeepEqual(back, steps) {
			t.Fatalf("%v formats to %q, parses to %v, %v", steps, FormatRolloutSteps(steps), back, err)
		}
	})
}
