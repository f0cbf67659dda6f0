// Package lint holds the project's rules written as tests, so that a fence is checked
// by `make test` rather than by review: which files may import unsafe or C, and the
// downward-only import order of the engine's packages.
package lint
