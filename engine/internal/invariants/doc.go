// Package invariants tells the engine whether its expensive self-checks are on: they
// are compiled in under the `invariants` build tag (make test runs the teardown-heavy
// packages with it) and compile away otherwise. Cheap checks stay on in production and
// do not ask. It must never be used to change behaviour, only to check it.
package invariants
