package crypt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/reactor"
)

// headerTimeout bounds the header I/O of one control-plane call: a liveness bound for a
// loaded machine, not a speed check.
const headerTimeout = 30 * time.Second

// errHeaderIO marks a header read or write the base failed.
var errHeaderIO = errors.New("crypt: header I/O failed")

// baseIO runs one I/O on b from the control plane: the control reactor opens (or shares)
// its channel for b and submits; this goroutine waits for the completion. Header I/O goes
// through the bdev layer like any other, so it works over every base (a file, a layer,
// another crypt bdev) and on a live volume, where it touches only the header region.
//
// If ctx ends first the I/O still owns buf and a channel reference; a goroutine waits
// for its completion and then gives the reference back.
func baseIO(ctx context.Context, r *reactor.Reactor, b *bdev.Bdev, typ bdev.IOType, off uint64,
	buf []byte, fua bool) error {
	io := &bdev.IO{Type: typ, FUA: fua, Offset: off, Length: uint64(len(buf)), Buf: buf}
	done := make(chan struct{})
	io.Done = func(*bdev.IO) { close(done) }
	var ch *bdev.Channel
	var openErr error
	if err := r.Do(func() {
		if ch, openErr = b.GetChannel(r); openErr == nil {
			ch.Submit(io)
		}
	}); err != nil {
		return fmt.Errorf("control reactor: %w", err)
	}
	if openErr != nil {
		return openErr
	}
	select {
	case <-done:
	case <-ctx.Done():
		go func() {
			<-done
			_ = r.Do(ch.Put)
		}()
		return fmt.Errorf("header %v of %d bytes at %d on %q: %w",
			typ, len(buf), off, b.Name(), ctx.Err())
	}
	if err := r.Do(ch.Put); err != nil {
		return fmt.Errorf("control reactor: %w", err)
	}
	if io.Status != bdev.StatusSuccess {
		return fmt.Errorf("header %v of %d bytes at %d on %q: %v (errno %d): %w",
			typ, len(buf), off, b.Name(), io.Status, io.Errno, errHeaderIO)
	}
	return nil
}

// readRegion reads the start of base where header copies may lie: two copy strides of
// the largest block size, or the whole base when it is smaller, in whole base blocks.
func readRegion(ctx context.Context, r *reactor.Reactor, base *bdev.Bdev) ([]byte, error) {
	n := min(base.SizeBytes(), 2*maxBlockSize)
	n -= n % uint64(base.BlockSize())
	buf := make([]byte, n)
	if err := baseIO(ctx, r, base, bdev.IORead, 0, buf, false); err != nil {
		return nil, err
	}
	return buf, nil
}

// writeHeader writes both copies of h, B then A, each durable before the next: a crash
// in between leaves A as it was and B new, both valid, both wrapping the same data key.
func writeHeader(ctx context.Context, r *reactor.Reactor, base *bdev.Bdev, h *Header) error {
	if err := h.check(); err != nil {
		panic(fmt.Sprintf("crypt: writing an invalid header: %v", err))
	}
	rec := h.encode()
	slot := make([]byte, h.Stride)
	copy(slot, rec[:])
	caps := base.Caps()
	for _, off := range []uint64{uint64(h.Stride), 0} {
		if err := baseIO(ctx, r, base, bdev.IOWrite, off, slot, true); err != nil {
			return err
		}
		// FUA makes the write durable where the base honours it; elsewhere a FLUSH
		// does, before the other copy is touched.
		if caps.VolatileCache && !caps.FUA {
			if err := baseIO(ctx, r, base, bdev.IOFlush, 0, nil, false); err != nil {
				return err
			}
		}
	}
	return nil
}
