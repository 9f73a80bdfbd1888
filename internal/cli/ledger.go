package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newLedgerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "ledger", Short: "The tamper-evident ledger of changes: verify, prove, why"}
	verify := g.clientCmd("verify", "Re-derive the ledger's tree from every entry and check every tile and checkpoint", 0,
		func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			rep, err := c.LedgerVerify(cmd.Context())
			if err != nil {
				return err
			}
			if err := g.print(rep, func(w io.Writer) {
				if rep.OK {
					fmt.Fprintf(w, "ledger ok: %d entries, %d tiles, %d checkpoints, root %s\n", rep.Entries, rep.Tiles, rep.Checkpoints, rep.Root)
				}
			}); err != nil {
				return err
			}
			if !rep.OK {
				f := rep.Failure
				if f == nil {
					return fmt.Errorf("ledger verify failed")
				}
				return fmt.Errorf("ledger verify failed at entry %d (%s): %s", f.Index, f.Type, f.Reason)
			}
			return nil
		})
	prove := g.clientCmd("prove ENTRY", "Print entry ENTRY (an index) with its inclusion proof and the signed checkpoint it verifies against (check it offline with verify-proof)", 1,
		func(cmd *cobra.Command, args []string) error {
			i, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("ENTRY %q: want an entry index (a non-negative integer)", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			rec, err := c.LedgerEntry(cmd.Context(), i)
			if err != nil {
				return err
			}
			proof, err := c.LedgerProof(cmd.Context(), i)
			if err != nil {
				return err
			}
			out := proofFile{rec, proof}
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out) // a proof is data to verify: JSON either way
		})
	why := g.clientCmd("why VERSION|HASH", "Print the chain of a released version (provenance ← approval ← policy ← tests ← change) or of a ledger entry hash", 1,
		func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			hash := args[0]
			want := strings.TrimPrefix(args[0], "sha256:")
			runs, err := c.PipelineRuns(cmd.Context(), "", 0)
			if err != nil && len(want) != 64 {
				return err
			}
			for _, r := range runs {
				ref, ok := r.Ledger["provenance"]
				if ok && r.State == api.RunPassed && strings.HasPrefix(strings.TrimPrefix(r.Bundle, "sha256:"), want) {
					hash = ref.Hash
					break
				}
			}
			trail, err := c.LedgerWhy(cmd.Context(), hash)
			if err != nil {
				return err
			}
			return g.print(trail, func(w io.Writer) {
				for _, r := range trail.Records {
					fmt.Fprintf(w, "#%d %s\n", r.Index, strings.TrimSpace(string(r.Entry)))
				}
				if trail.Truncated {
					fmt.Fprintln(w, "(truncated)")
				}
			})
		})
	cmd.AddCommand(verify, prove, why)
	cmd.AddCommand(newLedgerProofCmds(g)...)
	return cmd
}
