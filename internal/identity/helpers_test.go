package identity

import (
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// jwtsvidParse checks interoperability with go-spiffe's own verifier.
func jwtsvidParse(tok string, b *jwtbundle.Bundle) (*jwtsvid.SVID, error) {
	return jwtsvid.ParseAndValidate(tok, b, []string{"x"})
}
