//go:build linux

package process

import (
	"os"

	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
)

// The control protocol with the sandbox init lives in package sbinit, which
// the init runs from (see its package doc); these are the host side's names
// for it.
type (
	message        = sbinit.Message
	setupConfig    = sbinit.SetupConfig
	activateConfig = sbinit.ActivateConfig
	conn           = sbinit.Conn
)

const (
	opSetup    = sbinit.OpSetup
	opActivate = sbinit.OpActivate
	opSpawn    = sbinit.OpSpawn
	opKill     = sbinit.OpKill
	opPs       = sbinit.OpPs
	opReply    = sbinit.OpReply
	opExit     = sbinit.OpExit
	// maxSetupFiles bounds the mounts a setup message carries.
	maxSetupFiles = sbinit.MaxSetupFiles
)

var errEOF = sbinit.ErrEOF

func newConn(f *os.File) (*conn, error)             { return sbinit.NewConn(f) }
func socketpair() (host, child *os.File, err error) { return sbinit.Socketpair() }
func errFromReply(m *message) error                 { return sbinit.ErrFromReply(m) }

// MaybeRunInit must be called first thing in main (and in TestMain of any
// test binary that creates process-tier sandboxes); see sbinit.MaybeRun.
// The package sbinit's own init function normally gets there first.
func MaybeRunInit() { sbinit.MaybeRun() }
