//go:build !sluice_noprobe

package probe

// compiled is false only in the sluice_noprobe build, which removes every site so that
// a benchmark can compare the data path with and without them.
const compiled = true
