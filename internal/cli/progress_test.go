package cli

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// screen replays what a terminal does with the board's output (cursor up,
// carriage return, clear line, newline) and returns the lines on screen.
func screen(t *testing.T, out string) []string {
	t.Helper()
	var lines []string
	row := 0
	for i := 0; i < len(out); {
		switch {
		case strings.HasPrefix(out[i:], "\x1b["):
			j := i + 2
			for j < len(out) && out[j] >= '0' && out[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(out[i+2 : j])
			switch out[j] {
			case 'A':
				row -= n
				if row < 0 {
					t.Fatalf("cursor moved above the board")
				}
			case 'K':
				if row < len(lines) {
					lines[row] = ""
				}
			default:
				t.Fatalf("unexpected escape %q", out[i:j+1])
			}
			i = j + 1
		case out[i] == '\r':
			i++
		case out[i] == '\n':
			row++
			i++
		default:
			for row >= len(lines) {
				lines = append(lines, "")
			}
			k := strings.IndexAny(out[i:], "\x1b\r\n")
			if k < 0 {
				k = len(out) - i
			}
			lines[row] += out[i : i+k]
			i += k
		}
	}
	return lines
}

func stagesOf(names ...string) []api.PipelineStage {
	out := make([]api.PipelineStage, len(names))
	for i, n := range names {
		out[i] = api.PipelineStage{Name: n, State: api.StagePending}
	}
	return out
}

// TestStageBoardClass: the terminal display keeps one line per stage,
// redrawn in place (never scrolling), with each stage's state, duration
// and the first line of its reason cut to the line limit; log and run
// events change nothing; a stage the run did not list gets its own line.
func TestStageBoardClass(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(ms int, stage, state, msg string) api.PipelineEvent {
		return api.PipelineEvent{Type: api.EventStage, Stage: stage, State: state, Message: msg, Time: t0.Add(time.Duration(ms) * time.Millisecond)}
	}
	cases := []struct {
		name   string
		stages []api.PipelineStage
		events []api.PipelineEvent
		want   []string
	}{
		{"deploy passes", stagesOf(api.PipelineStages()...), []api.PipelineEvent{
			ev(0, api.StageValidate, api.StageRunning, ""), ev(5, api.StageValidate, api.StagePassed, ""),
			ev(5, api.StageBuild, api.StageRunning, ""), {Type: api.EventLog, Stage: api.StageBuild, Message: "template sha256:…"},
			ev(300, api.StageBuild, api.StagePassed, ""), ev(300, api.StageTest, api.StageRunning, ""),
			ev(420, api.StageTest, api.StagePassed, "2 tests passed"), {Type: api.EventRun, State: api.RunRunning},
		}, []string{"  ✓ validate  passed 5 ms", "  ✓ build     passed 295 ms", "  ✓ test      passed 120 ms: 2 tests passed",
			"  · policy    pending", "  · review    pending", "  · sign      pending", "  · record    pending", "  · rollout   pending"}},
		{"config run fails at apply with a long reason", stagesOf(api.ConfigStages()...), []api.PipelineEvent{
			ev(0, api.StageApply, api.StageRunning, ""),
			ev(7, api.StageApply, api.StageFailed, strings.Repeat("trusted-hosts changed since this run was made ", 5)+"\nsecond line"),
		}, []string{"  · validate  pending", "  · policy    pending", "  · review    pending", "  · record    pending",
			"  ✗ apply     failed 7 ms: …"}}, // cut at the line limit, first line only
		{"waits for review; an unlisted stage", stagesOf(api.StageValidate), []api.PipelineEvent{
			ev(0, api.StageReview, api.StageWaiting, "waiting for review"),
		}, []string{"  · validate  pending", "  ? review    waiting: waiting for review"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			b := newStageBoard(&out, c.stages)
			for _, e := range c.events {
				b.event(e)
			}
			got := screen(t, out.String())
			if len(got) != len(c.want) {
				t.Fatalf("%d lines on screen, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for i := range got {
				want := c.want[i]
				if strings.HasSuffix(want, "…") && strings.HasPrefix(want, "  ✗") {
					if !strings.HasPrefix(got[i], strings.TrimSuffix(want, "…")) || len([]rune(got[i])) != maxBoardLine+2 || strings.Contains(got[i], "second line") {
						t.Errorf("line %d: %q", i, got[i])
					}
					continue
				}
				if got[i] != want {
					t.Errorf("line %d: %q, want %q", i, got[i], want)
				}
			}
		})
	}
}
