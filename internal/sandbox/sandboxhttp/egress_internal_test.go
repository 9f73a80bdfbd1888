package sandboxhttp

import (
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
)

func FuzzCheckEgress(f *testing.F) {
	for _, s := range []string{"api.example.com", "*.example.com", "http://x/", "a,b", "", "*.", "x:80", "x:0", "x.test:8443", "API_KEY", "a b"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, host, secret string) {
		errs := checkEgress([]string{host}, []string{secret})
		hostOK, secretOK := true, true
		for _, e := range errs {
			hostOK = hostOK && e.Field != "egress[0]"
			secretOK = secretOK && e.Field != "secrets[0]"
		}
		// An accepted pattern is one the proxy can match, and joins into
		// the comma-separated label without splitting.
		if _, err := hostpattern.Parse(host); hostOK && (err != nil || strings.Contains(host, ",")) {
			t.Fatalf("accepted egress pattern %q", host)
		}
		if secretOK && (secret == "" || strings.ContainsAny(secret, ",{} ")) {
			t.Fatalf("accepted secret name %q", secret)
		}
	})
}
