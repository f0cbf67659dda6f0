//go:build !invariants

package mem

// invariantsEnabled is false in production builds: the checks compile away.
const invariantsEnabled = false
