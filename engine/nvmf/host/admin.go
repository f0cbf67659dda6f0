package host

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"sluice/engine/proto/nvme"
)

// adminQueue runs a queue for many goroutines: callers submit under mu and wait on the
// slot's channel; one reader goroutine receives every PDU and, under mu, hands
// completions out, keeps the Asynchronous Event Request outstanding, and answers R2Ts.
// The admin path may allocate; the I/O path (IOQueue) does not use this.
type adminQueue struct {
	mu sync.Mutex
	q  *queue // guarded by mu, except the receive side (c.hdr, c.br) owned by reader

	dead chan struct{} // closed when the reader exits; q.err says why

	aen        chan nvme.AsyncEvent // closed by the reader when it exits
	aerOn      bool                 // guarded by mu: keep an AER outstanding
	aerStatus  nvme.Status          // guarded by mu: the failure that stopped AERs
	aenDropped atomic.Uint64
}

func newAdminQueue(c *pduConn, size int, sqFlow bool) *adminQueue {
	a := &adminQueue{
		q:    newQueue(c, 0, size, AdminMaxICD, sqFlow),
		dead: make(chan struct{}),
		aen:  make(chan nvme.AsyncEvent, 16),
	}
	go a.reader()
	return a
}

// reader receives PDUs until the connection fails or is closed.
func (a *adminQueue) reader() {
	defer close(a.dead)
	defer close(a.aen)
	for {
		// Reading the header needs no lock: only this goroutine receives.
		l, err := a.q.c.readHeader()
		a.mu.Lock()
		idx := -1
		if err == nil {
			idx, err = a.q.process(l)
		}
		if err != nil {
			a.q.fail(err)
			a.mu.Unlock()
			return
		}
		if idx >= 0 {
			a.completed(idx)
		}
		a.mu.Unlock()
	}
}

// completed hands a completion to its waiter, or handles an AER.
//
// Preconditions: a.mu held.
func (a *adminQueue) completed(idx int) {
	s := &a.q.slots[idx]
	switch {
	case s.aer:
		cqe := s.cqe
		a.q.release(idx)
		st := cqe.Status()
		if !st.Success() {
			// Aborted (SQ deletion, shutdown) or over the AER limit: stop.
			a.aerOn = false
			a.aerStatus = st
			return
		}
		select {
		case a.aen <- nvme.DecodeAsyncEvent(cqe.DW0()):
		default:
			a.aenDropped.Add(1)
		}
		if a.aerOn {
			a.submitAER()
		}
	case s.abandoned:
		a.q.release(idx)
	default:
		close(s.done)
	}
}

// submitAER leaves one Asynchronous Event Request outstanding, as the Linux host does
// (NVME_NR_AEN_COMMANDS 1).
//
// Preconditions: a.mu held.
func (a *adminQueue) submitAER() {
	idx := a.q.freeSlot()
	if idx < 0 || a.q.err != nil {
		return
	}
	sqe := a.q.sqe(idx)
	sqe.SetOpcode(uint8(nvme.AdminAsyncEventRequest))
	a.q.slots[idx].aer = true
	if err := a.q.submit(idx, nil); err != nil {
		a.q.release(idx)
		return
	}
	a.q.flush()
}

// enableAER starts keeping an AER outstanding.
func (a *adminQueue) enableAER() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.q.err != nil {
		return a.q.err
	}
	if !a.aerOn {
		a.aerOn = true
		a.submitAER()
	}
	return a.q.err
}

// exec sends one command and waits for its completion, ctx, the timeout or the
// connection's end. A command that times out is abandoned: its slot is freed when (if)
// the completion arrives.
func (a *adminQueue) exec(ctx context.Context, timeout time.Duration, build func(*nvme.SQE), data []byte) (nvme.CQE, error) {
	// A context already done sends nothing: otherwise a fast target's completion
	// races the cancellation and the caller cannot tell whether it acted.
	if err := ctx.Err(); err != nil {
		return nvme.CQE{}, err
	}
	a.mu.Lock()
	if a.q.err != nil {
		a.mu.Unlock()
		return nvme.CQE{}, a.q.err
	}
	idx := a.q.freeSlot()
	if idx < 0 {
		a.mu.Unlock()
		return nvme.CQE{}, ErrQueueFull
	}
	build(a.q.sqe(idx))
	done := make(chan struct{})
	s := &a.q.slots[idx]
	if err := a.q.submit(idx, data); err != nil {
		a.mu.Unlock()
		return nvme.CQE{}, err
	}
	s.done = done
	s.start = time.Now()
	if err := a.q.flush(); err != nil {
		a.mu.Unlock()
		return nvme.CQE{}, err
	}
	a.mu.Unlock()

	var expired <-chan time.Time
	if timeout >= 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-done:
	case <-a.dead:
	case <-ctx.Done():
	case <-expired:
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if s.state == slotDone && s.done == done {
		cqe := s.cqe
		a.q.release(idx)
		return cqe, nil
	}
	if a.q.err != nil {
		return nvme.CQE{}, a.q.err
	}
	s.abandoned = true
	if err := ctx.Err(); err != nil {
		return nvme.CQE{}, err
	}
	return nvme.CQE{}, ErrTimeout
}

// err returns the queue's fatal error, if any.
func (a *adminQueue) err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.q.err
}

// close closes the connection and waits for the reader.
func (a *adminQueue) close() {
	a.q.c.close()
	<-a.dead
}
