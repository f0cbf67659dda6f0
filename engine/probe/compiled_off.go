//go:build sluice_noprobe

package probe

const compiled = false
