package sandbox

import "time"

// SetClaimWaitMin sets the least wait of a create for a prepare under way
// (claim) and returns the function that restores it.
func SetClaimWaitMin(d time.Duration) func() {
	old := claimWaitMin
	claimWaitMin = d
	return func() { claimWaitMin = old }
}
