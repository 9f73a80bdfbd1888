package daemon

// SessionSVIDMintedForTest reports whether the session with SPIFFE ID id
// holds a minted X.509-SVID.
func SessionSVIDMintedForTest(d *Daemon, id string) bool { return d.sec.SessionSVIDMinted(id) }
