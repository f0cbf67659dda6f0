package group

import (
	"context"
	"sync"
	"time"
)

// Loop is the injected clock and executor a node runs on. Every piece of the node's
// state (the raft RawNode, the replicated state, the waiters) is touched only by
// functions run on its Loop, one at a time, so the node needs no lock around them; and
// because the Loop is injected, the simulator runs several nodes on one virtual clock in
// a seeded order, deterministically.
//
// Now is the only clock the node's decisions read (never time.Now).
type Loop interface {
	// Now returns the loop's current time.
	Now() time.Time
	// Post queues fn to run on the loop after everything queued before it. It is safe
	// from any goroutine and never runs fn inside Post.
	Post(fn func())
	// After runs fn on the loop once d has passed on the loop's clock; stop cancels it
	// (and reports whether it did, before fn ran).
	After(d time.Duration, fn func()) (stop func() bool)
	// Wait blocks the calling goroutine (never the loop) until done is closed or ctx ends;
	// it returns ctx.Err() in the second case. The simulator's Wait runs the simulation
	// while it waits, which is how blocking calls stay deterministic there.
	Wait(ctx context.Context, done <-chan struct{}) error
}

// realLoop is the production Loop: one goroutine draining an unbounded queue, on the
// wall clock.
type realLoop struct {
	mu sync.Mutex
	// +checklocks:mu
	queue []func()
	// +checklocks:mu
	stopped bool
	wake    chan struct{}
	exited  chan struct{}
}

// NewLoop starts a production Loop. Stop it with its stop function once its node is
// closed.
//
// Postconditions: the caller calls stop.
func NewLoop() (l Loop, stop func()) {
	rl := &realLoop{wake: make(chan struct{}, 1), exited: make(chan struct{})}
	go rl.run()
	return rl, rl.stop
}

func (l *realLoop) Now() time.Time { return time.Now() }

func (l *realLoop) Post(fn func()) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.queue = append(l.queue, fn)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *realLoop) After(d time.Duration, fn func()) func() bool {
	t := time.AfterFunc(d, func() { l.Post(fn) })
	return t.Stop
}

func (l *realLoop) Wait(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run drains the queue until stop.
func (l *realLoop) run() {
	defer close(l.exited)
	var batch []func()
	for {
		l.mu.Lock()
		batch, l.queue = l.queue, batch[:0]
		stopped := l.stopped
		l.mu.Unlock()
		if stopped {
			return
		}
		for i, fn := range batch {
			fn()
			batch[i] = nil
		}
		if len(batch) == 0 {
			<-l.wake
		}
	}
}

// stop ends the loop after the function running now; queued functions are dropped.
func (l *realLoop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.exited
}
