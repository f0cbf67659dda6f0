//go:build invariants

package mem

// invariantsEnabled turns on the expensive checks: poisoning of free memory with a check
// at the next allocation (use after free), a live bit per object checked by Free and
// Bytes (double free, use after free), and a per-object leak report at Close.
const invariantsEnabled = true
