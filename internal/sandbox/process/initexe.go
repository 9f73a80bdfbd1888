//go:build linux

package process

import (
	"bytes"
	"context"
	"debug/elf"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox/process/srcsum"
)

//go:generate env CGO_ENABLED=0 go build -trimpath "-ldflags=-s -w" -o initexe/sbinit-init ./sbinit/initmain
//go:generate env GOOS= GOARCH= go run ./sbinit/initmain/sum -o initexe/sbinit.sum -target $GOOS/$GOARCH ./sbinit

// initExe holds the small sandbox init that go generate builds (see
// initexe/README.md); only the README when it was not generated.
//
//go:embed initexe
var initExe embed.FS

// initSources are package sbinit's sources as this binary was built from
// them: an embedded init built from other sources (a stale initexe after a
// pull and a plain go build) is not run.
//
//go:embed sbinit/*.go
var initSources embed.FS

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
	if err := checkInitExe(data, embeddedInitSum()); err != nil {
		return nil, err
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
	if err := probeInitExe(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// initExeProbeOut is what the small init says when started by hand
// (sbinit/initmain), as the probe starts it.
const initExeProbeOut = "started by the process tier, not by hand"

// probeInitExe runs the init in f once by hand: it must start and say it
// is the sandbox init (exit status 2). A host that will not execute a
// memfd (vm.memfd_noexec, an LSM policy), an init for another CPU level,
// or a corrupt one fails here, once, and the tier re-executes the daemon
// binary instead of failing every create.
func probeInitExe(f *os.File) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/proc/self/fd/3")
	cmd.Args = []string{"agentcloud-sandbox-init-probe"}
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{f}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 && strings.Contains(out.String(), initExeProbeOut) {
		return nil
	}
	if err == nil {
		err = errors.New("exit status 0")
	}
	return fmt.Errorf("embedded sandbox init does not run here (%w): %.200q", err, out.String())
}

// embeddedInitSum is the record written beside the embedded init (its
// sources' sum, target GOOS/GOARCH and Go version), or "".
func embeddedInitSum() string {
	b, err := initExe.ReadFile(initSumName)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// checkInitExe refuses an embedded init this daemon must not run in place
// of itself: one built from other sbinit sources (it would apply older
// seccomp/landlock rules and ignore control fields it does not know), for
// another platform or by another Go toolchain (make does not rebuild it
// when only GOARCH or the toolchain changes), or that is not an ELF
// executable for this machine. The caller falls back to re-executing the
// daemon binary, which is always current.
func checkInitExe(data []byte, record string) error {
	f := strings.Fields(record)
	if len(f) != 3 {
		return fmt.Errorf("embedded sandbox init: no build record (%q): run go generate ./internal/sandbox/process", record)
	}
	want, err := srcsum.SumFS(initSources, "sbinit")
	if err != nil {
		return fmt.Errorf("embedded sandbox init: %w", err)
	}
	if f[0] != want {
		return fmt.Errorf("embedded sandbox init is stale: built from other sbinit sources: run go generate ./internal/sandbox/process")
	}
	if plat := runtime.GOOS + "/" + runtime.GOARCH; f[1] != plat {
		return fmt.Errorf("embedded sandbox init was built for %s, this daemon runs on %s: run go generate ./internal/sandbox/process", f[1], plat)
	}
	if f[2] != runtime.Version() {
		return fmt.Errorf("embedded sandbox init was built by %s, this daemon by %s: run go generate ./internal/sandbox/process", f[2], runtime.Version())
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("embedded sandbox init: %w", err)
	}
	if m, ok := elfMachine[runtime.GOARCH]; !ok || ef.Machine != m || ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return fmt.Errorf("embedded sandbox init is a %v %v, not an executable for %s", ef.Type, ef.Machine, runtime.GOARCH)
	}
	return nil
}

// elfMachine: the ELF machine of each GOARCH the process tier builds for.
var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
	"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "loong64": elf.EM_LOONGARCH,
}
