package cli

// Live stage progress (progress.go): on a terminal, `agentcloud deploy`
// draws one line per stage of the run and redraws them in place as the
// run's events arrive; elsewhere it prints a plain line per stage change,
// and with -o json each event as JSON (pipeline_deploy.go).

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/agentcloud/agentcloud/api"
)

// isTerminal reports whether w is a terminal (a redrawn display is safe).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// maxBoardLine caps one stage line (the rest of a long reason is cut).
const maxBoardLine = 100

// stageBoard is the terminal display of a run's stages: one line each,
// redrawn in place (cursor up over the lines drawn, each line cleared).
type stageBoard struct {
	w      io.Writer
	names  []string
	state  map[string]string
	msg    map[string]string
	start  map[string]time.Time
	took   map[string]time.Duration
	drawn  int
	frames int
}

// newStageBoard draws the stages of a run, all pending.
func newStageBoard(w io.Writer, stages []api.PipelineStage) *stageBoard {
	b := &stageBoard{w: w, state: map[string]string{}, msg: map[string]string{}, start: map[string]time.Time{}, took: map[string]time.Duration{}}
	for _, s := range stages {
		b.names = append(b.names, s.Name)
		b.state[s.Name] = s.State
	}
	b.draw()
	return b
}

// event applies a stage event and redraws.
func (b *stageBoard) event(ev api.PipelineEvent) {
	if ev.Type != api.EventStage || ev.Stage == "" {
		return
	}
	if _, ok := b.state[ev.Stage]; !ok {
		b.names = append(b.names, ev.Stage) // a stage the run did not list at first
	}
	if ev.State != "" {
		b.state[ev.Stage] = ev.State
	}
	switch ev.State {
	case api.StageRunning:
		b.start[ev.Stage] = ev.Time
	case api.StagePassed, api.StageFailed, api.StageSkipped, api.StageCancelled:
		if t, ok := b.start[ev.Stage]; ok && !ev.Time.Before(t) {
			b.took[ev.Stage] = ev.Time.Sub(t)
		}
	}
	b.msg[ev.Stage] = firstLine(ev.Message)
	b.draw()
}

// marks of the stage states.
var stageMarks = map[string]string{
	api.StagePending: "·", api.StageRunning: "…", api.StageWaiting: "?", api.StagePassed: "✓",
	api.StageFailed: "✗", api.StageSkipped: "-", api.StageCancelled: "✗",
}

func (b *stageBoard) line(name string) string {
	st := b.state[name]
	mark := stageMarks[st]
	if mark == "" {
		mark = " "
	}
	s := fmt.Sprintf("%s %-9s %s", mark, name, st)
	if d, ok := b.took[name]; ok {
		s += fmt.Sprintf(" %d ms", d.Milliseconds())
	}
	if m := b.msg[name]; m != "" {
		s += ": " + m
	}
	if r := []rune(s); len(r) > maxBoardLine {
		s = string(r[:maxBoardLine-1]) + "…"
	}
	return s
}

// draw redraws every stage line in place.
func (b *stageBoard) draw() {
	var sb strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", b.drawn)
	}
	for _, n := range b.names {
		sb.WriteString("\r\x1b[2K  ")
		sb.WriteString(b.line(n))
		sb.WriteByte('\n')
	}
	b.drawn = len(b.names)
	b.frames++
	_, _ = io.WriteString(b.w, sb.String())
}
