package session

import "github.com/agentcloud/agentcloud/internal/isolate"

// Streamed responses. A call whose Request has a Sink may answer with a
// body the agent makes as a stream (isolate/stream.go); the call then lasts
// until the stream ends, under the same limits as any call: the version's
// wall and CPU time, the session body limit for the whole body. The session
// stays locked meanwhile, so hibernation (the idle sweep, the memory budget,
// an explicit Hibernate) is deferred until the stream ends, never done
// under it. A client that goes away cancels the stream and ends the call
// normally; the call is not interrupted for it (its context does not carry
// the client's cancellation).

// gatedSink is the output gate of a streamed response: the head goes out
// only once the state writes made so far are durable, as a buffered
// response's would; writes made while the stream runs commit when it ends.
type gatedSink struct {
	isolate.BodySink
	h   *callHost // commits the call's writes
	err error     // the commit's failure, which fails the call
}

func (g *gatedSink) Start(resp isolate.Response) error {
	if err := g.h.commit(g.h.ctx); err != nil {
		g.err = err
		return err
	}
	return g.BodySink.Start(resp)
}
