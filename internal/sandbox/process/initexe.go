//go:build linux

package process

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

//go:generate env CGO_ENABLED=0 go build -trimpath "-ldflags=-s -w" -o initexe/sbinit-init ./sbinit/initmain
//go:generate go run ./sbinit/initmain/sum -o initexe/sbinit.sum ./sbinit

// initExe holds the small sandbox init that go generate builds (see
// initexe/README.md); only the README when it was not generated.
//
//go:embed initexe
var initExe embed.FS

const (
	initExeName = "initexe/sbinit-init"
	initSumName = "initexe/sbinit.sum"
)

// errNoInitExe: this build carries no small init (go generate was not run).
var errNoInitExe = errors.New("no embedded sandbox init (run go generate ./internal/sandbox/process)")

// initExeMemfd returns the embedded small init in a sealed, executable
// memfd, for the spawner to execute in place of the whole daemon binary.
// Sealed against writes, growth and shrinking (and further seal changes),
// so neither the spawner nor anything that reaches the fd later can change
// what every new sandbox runs as its init.
func initExeMemfd() (*os.File, error) {
	data, err := initExe.ReadFile(initExeName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoInitExe
	}
	if err != nil {
		return nil, fmt.Errorf("embedded sandbox init: %w", err)
	}
	fd, err := unix.MemfdCreate("agentcloud-sandbox-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // a kernel before MFD_EXEC (6.3): executable by default
		fd, err = unix.MemfdCreate("agentcloud-sandbox-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox init memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "agentcloud-sandbox-init")
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox init memfd: %w", err)
	}
	seals := unix.F_SEAL_WRITE | unix.F_SEAL_GROW | unix.F_SEAL_SHRINK | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal sandbox init memfd: %w", err)
	}
	return f, nil
}

// embeddedInitSum is the sum recorded beside the embedded init, or "".
func embeddedInitSum() string {
	b, err := initExe.ReadFile(initSumName)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}
