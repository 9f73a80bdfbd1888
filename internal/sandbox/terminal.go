package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// WindowSize is a terminal's size in character cells.
type WindowSize struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// Limits of a terminal's size, so that a client cannot make programs
// inside allocate screens of absurd size.
const (
	MaxTerminalRows = 1000
	MaxTerminalCols = 1000
)

var (
	// ErrTerminalSize means rows or cols out of 1..MaxTerminalRows/Cols.
	ErrTerminalSize = errors.New("rows and cols must be between 1 and 1000")
	// ErrTerminals means the sandbox has as many terminals open as its
	// tier allows.
	ErrTerminals = errors.New("too many terminals open in the sandbox at once")
)

// Check refuses a size outside the limits (ErrTerminalSize).
func (s WindowSize) Check() error {
	if s.Rows == 0 || s.Cols == 0 || s.Rows > MaxTerminalRows || s.Cols > MaxTerminalCols {
		return fmt.Errorf("terminal size %dx%d: %w", s.Rows, s.Cols, ErrTerminalSize)
	}
	return nil
}

// Terminal is one process running inside a sandbox on a pseudo-terminal
// made inside the sandbox (its own devpts instance): the process is a
// session leader with the terminal as its controlling tty, so job control,
// line editing, Ctrl-C and `stty size` work as in a login shell.
//
// Read returns what the process writes to the terminal and io.EOF once it
// has exited and its output is drained; Write types input. Close hangs the
// terminal up and kills the process group; it is idempotent.
type Terminal interface {
	io.ReadWriteCloser
	// PID is the process's pid inside the sandbox (its session and
	// process group too).
	PID() int
	// Resize sets the window size; the process gets SIGWINCH.
	Resize(WindowSize) error
	// Signal sends sig to the terminal's process group.
	Signal(ctx context.Context, sig os.Signal) error
	// Wait waits for the process to exit and returns its exit status (or
	// 128+signal). It may be called from several goroutines.
	Wait(ctx context.Context) (exitCode int, err error)
}

// Terminaler is implemented by sandboxes that can run a process on a
// terminal. spec.Stdin and spec.OutputFile are ignored. Sandboxes of
// tiers without terminals do not implement it.
type Terminaler interface {
	Terminal(ctx context.Context, spec ExecSpec, size WindowSize) (Terminal, error)
}
