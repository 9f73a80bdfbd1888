package store

import "strings"

// InjectConnectionFault makes the server close the store's client
// connection for good, exactly as an over-long protocol line does (the
// client library does not reconnect after "maximum control line
// exceeded"). The store then dials a new connection. Fault-injection tests
// here and in the packages built on the store use it to show that the node
// recovers without a restart; nothing else calls it.
func (s *Store) InjectConnectionFault() {
	nc := s.cur.Load().nc
	_ = nc.Publish(strings.Repeat("x", 5000), nil)
	_ = nc.Flush()
}
