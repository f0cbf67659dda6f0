//go:build !race && !invariants

package mem

const slowChecks = false
