// Command sum writes the record go generate keeps beside the embedded
// sandbox init (internal/sandbox/process/initexe): srcsum.Sum of package
// sbinit's sources, the GOOS/GOARCH the init was built for and the Go
// toolchain that built it, on one line. The daemon compares all three with
// its own sources, platform and toolchain before it runs the init.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/agentcloud/agentcloud/internal/sandbox/process/srcsum"
)

func main() {
	out := flag.String("o", "", "output file")
	target := flag.String("target", "", "GOOS/GOARCH the init was built for")
	flag.Parse()
	if *out == "" || flag.NArg() != 1 || strings.Count(*target, "/") != 1 {
		fmt.Fprintln(os.Stderr, "usage: sum -o FILE -target GOOS/GOARCH DIR")
		os.Exit(2)
	}
	s, err := srcsum.Sum(flag.Arg(0))
	if err == nil {
		// runtime.Version: go generate runs this with the toolchain that
		// built the init a moment before.
		err = os.WriteFile(*out, []byte(s+" "+*target+" "+runtime.Version()+"\n"), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sum:", err)
		os.Exit(1)
	}
}
