//go:build race

package gatewaytest

// raceEnabled: the race detector multiplies CPU cost, so the flood test
// offers less (still ten times capacity) with a longer service time.
const raceEnabled = true
