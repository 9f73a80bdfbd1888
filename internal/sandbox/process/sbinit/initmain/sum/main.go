// Command sum writes srcsum.Sum of a package directory to a file: go
// generate records with it which sources the embedded sandbox init was
// built from (internal/sandbox/process/initexe).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/agentcloud/agentcloud/internal/sandbox/process/srcsum"
)

func main() {
	out := flag.String("o", "", "output file")
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: sum -o FILE DIR")
		os.Exit(2)
	}
	s, err := srcsum.Sum(flag.Arg(0))
	if err == nil {
		err = os.WriteFile(*out, []byte(s+"\n"), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sum:", err)
		os.Exit(1)
	}
}
