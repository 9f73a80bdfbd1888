package daemon

// The web console (console.go): internal/console serves /ui/ behind the
// front door and, in front of it, turns a console cookie session into the
// bearer token it was opened with (after its CSRF check), so the console's
// calls are authenticated, classified and authorized as the CLI's.

import (
	"context"
	"net/http"

	"github.com/agentcloud/agentcloud/internal/console"
)

// startConsole builds the console; guard puts it around the front door.
func (d *Daemon) startConsole(context.Context) error {
	d.console = console.New(console.Config{
		Authenticate: func(r *http.Request) (console.Principal, error) {
			p, err := d.sec.Authenticate(r)
			return console.Principal(p), err
		},
		Log: d.log.With("component", "console"),
	})
	return nil
}

// consoleAround wraps the front door h (serving inner) with the console.
func (d *Daemon) consoleAround(door func(http.Handler) http.Handler, inner http.Handler) http.Handler {
	if d.console == nil {
		return door(inner)
	}
	return d.console.Wrap(door(d.console.Mount(inner)))
}
