// Package managertest gives tests an in-memory Decider: the reservation state machine
// applied at once, with switches to refuse commands as the group does when its backup
// leader is not synchronized. It keeps nothing across restarts: tests only.
package managertest

import (
	"context"
	"fmt"
	"sync"

	"sluice/engine/reservation"
	"sluice/engine/reservation/manager"
)

// Decider applies commands to in-memory states.
type Decider struct {
	mu sync.Mutex
	// RefusePersistent refuses the commands that ask to persist, retryably, as a group
	// whose backup leader is not synchronized does.
	RefusePersistent bool
	states           map[[16]byte]*reservation.State
	// Decided counts the commands applied.
	Decided int
}

// New makes an empty decider.
func New() *Decider { return &Decider{states: map[[16]byte]*reservation.State{}} }

// Reserve applies cmd to vol's state.
func (d *Decider) Reserve(_ context.Context, vol [16]byte, cmd reservation.Command) (reservation.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.states[vol]
	if st == nil {
		st = &reservation.State{}
		d.states[vol] = st
	}
	if d.RefusePersistent && reservation.AsksToPersist(cmd, st) {
		return reservation.Result{}, fmt.Errorf("backup group leader not synchronized: %w", manager.ErrRetryable)
	}
	d.Decided++
	return st.Apply(cmd), nil
}

// Volume returns a copy of vol's state.
func (d *Decider) Volume(vol [16]byte) (reservation.State, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.states[vol]
	if st == nil {
		return reservation.State{}, false
	}
	return st.Clone(), true
}

// SetRefusePersistent switches the refusal of persistent commands.
func (d *Decider) SetRefusePersistent(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.RefusePersistent = on
}
