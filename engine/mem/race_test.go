//go:build race || invariants

package mem

// slowChecks: the race detector or the invariants checks make each step several times
// dearer; the property test takes fewer steps so the suite stays short.
const slowChecks = true
