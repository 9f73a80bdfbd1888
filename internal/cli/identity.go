package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newIdentityCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "identity", Short: "Issue X.509-SVIDs (client certificates) from the platform CA"}
	var (
		id, certOut, keyOut, bundleOut string
		ttl                            time.Duration
	)
	issue := &cobra.Command{
		Use:   "issue --spiffe-id ID [--cert FILE] [--key FILE] [--bundle FILE]",
		Short: "Generate a key here and have the CA certify it for a SPIFFE ID",
		Long: `Generate a P-256 key locally, send only a certificate request (the public key)
to the daemon, and write the certificate, the key (mode 0600) and the CA bundle.
Use them as a client certificate against a daemon started with --tls.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if id == "" {
				return fmt.Errorf("missing --spiffe-id: e.g. spiffe://agentcloud.local/user/alice or user:alice")
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return fmt.Errorf("generate key: %w", err)
			}
			csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
			if err != nil {
				return fmt.Errorf("certificate request: %w", err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			req := api.IdentityRequest{SPIFFEID: id, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			out, err := c.IssueIdentity(cmd.Context(), req)
			if err != nil {
				return err
			}
			der, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				return fmt.Errorf("marshal key: %w", err)
			}
			if err := os.WriteFile(keyOut, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				return fmt.Errorf("write key: %w", err)
			}
			if err := os.WriteFile(certOut, []byte(out.Certificate), 0o644); err != nil {
				return fmt.Errorf("write certificate: %w", err)
			}
			if err := os.WriteFile(bundleOut, []byte(out.Bundle), 0o644); err != nil {
				return fmt.Errorf("write bundle: %w", err)
			}
			return g.print(map[string]any{"spiffe_id": out.SPIFFEID, "cert": certOut, "key": keyOut, "bundle": bundleOut, "expires": out.Expires},
				func(w io.Writer) {
					fmt.Fprintf(w, "%s: certificate %s, key %s, CA bundle %s (expires %s)\n", out.SPIFFEID, certOut, keyOut, bundleOut, out.Expires.Local().Format(time.DateTime))
				})
		},
	}
	f := issue.Flags()
	f.StringVar(&id, "spiffe-id", "", "SPIFFE ID (or KIND:NAME) to certify")
	f.StringVar(&certOut, "cert", "svid.crt", "where to write the certificate")
	f.StringVar(&keyOut, "key", "svid.key", "where to write the private key (0600)")
	f.StringVar(&bundleOut, "bundle", "bundle.crt", "where to write the CA bundle")
	f.DurationVar(&ttl, "ttl", time.Hour, "lifetime (at most 24h)")
	cmd.AddCommand(issue)
	return cmd
}
