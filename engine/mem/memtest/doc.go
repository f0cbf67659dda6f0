// Package memtest holds test helpers for code that maps hugepages through engine/mem.
//
// What it owns: the rule for reserving hugepages from a test: reserve what the test
// needs, restore the pool size afterwards, and never skip silently where the reservation
// is expected to work (CI=true as root).
//
// Who may call it: _test.go files only.
//
// What it must never do: be imported by non-test code, or import engine/mem (engine/mem's
// own tests import it).
package memtest
