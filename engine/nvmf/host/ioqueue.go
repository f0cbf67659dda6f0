package host

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"sluice/engine/proto/nvme"
)

// IOQueue is one I/O queue pair on its own TCP connection.
//
// It has two APIs that must not be mixed while commands are in flight:
//   - synchronous helpers (Read, Write, FlushCache, WriteZeroes, Deallocate, Exec) for
//     tests: one command at a time, serialised by a mutex, safe from any goroutine;
//   - an asynchronous, pipelined API for the benchmark (SubmitRead, SubmitWrite,
//     Flush, Reap): used from one goroutine, no internal goroutine, no lock, and no
//     heap allocation per I/O. Read data lands directly in the caller's buffer when it
//     is larger than the receive buffer; write data is sent from the caller's buffer
//     with writev, never copied.
//
// Any transport error, protocol violation or timeout is fatal to the queue: it closes,
// and every later call returns the same error (Err). A synchronous command's context
// ending before its completion counts as a timeout: the command's fate is unknown, so
// the queue cannot be trusted any more (the Linux host resets the association then).
type IOQueue struct {
	ctrl    *Controller
	q       *queue
	qid     uint16
	timeout time.Duration
	armed   time.Time // read deadline currently set on the connection, zero if none

	syncMu sync.Mutex
	closed atomic.Bool
}

// Completion is one finished asynchronous command.
type Completion struct {
	Tag     uint16
	Status  nvme.Status // SCT/SC, CRD, More, DNR
	DW0     uint32
	Latency time.Duration // from Submit to the completion's arrival in Reap
}

// NewIOQueue opens the next I/O queue: a new connection, ICReq/ICResp with the
// controller's digests, and a Fabrics Connect with the controller's CNTLID, host NQN
// and host ID, QID the lowest free one, SQSIZE IOQueueSize()-1. The Connect data goes
// in-capsule only if it fits the I/O queues' in-capsule limit; otherwise through R2T,
// as the Linux host does.
func (c *Controller) NewIOQueue(ctx context.Context) (*IOQueue, error) {
	if c.disc {
		return nil, fmt.Errorf("discovery controller: %w", ErrNoIOQueues)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	qid := uint16(0)
	for i := 1; i <= c.nIOQ; i++ {
		if _, used := c.ioqs[uint16(i)]; !used {
			qid = uint16(i)
			break
		}
	}
	if qid == 0 {
		c.mu.Unlock()
		return nil, ErrNoIOQueues
	}
	c.ioqs[qid] = nil // reserved
	c.mu.Unlock()
	unreserve := func() {
		c.mu.Lock()
		delete(c.ioqs, qid)
		c.mu.Unlock()
	}

	pc, err := dial(ctx, &c.opts, c.addr)
	if err != nil {
		unreserve()
		return nil, err
	}
	q := &IOQueue{
		ctrl:    c,
		q:       newQueue(pc, qid, c.ioSize, c.ioICD, !c.opts.DisableSQFlow),
		qid:     qid,
		timeout: c.opts.Timeout,
	}
	q.q.anySQID = c.opts.AcceptAnySQID
	cqe, err := c.connect(ctx, q.exec, qid, uint16(c.ioSize-1), 0, c.cntlid)
	if err == nil {
		if _, authreq := nvme.ConnectCNTLID(cqe.DW0()); authreq != 0 {
			err = fmt.Errorf("connect qid %d: controller requires in-band authentication: %w", qid, ErrUnsupported)
		}
	}
	if err != nil {
		pc.close()
		unreserve()
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		pc.close()
		delete(c.ioqs, qid)
		return nil, ErrClosed
	}
	c.ioqs[qid] = q
	return q, nil
}

// QID returns the queue ID.
func (q *IOQueue) QID() uint16 { return q.qid }

// Size returns the number of entries, and so of tags (0..Size()-1).
func (q *IOQueue) Size() int { return len(q.q.slots) }

// MaxICD returns the largest write sent in-capsule; larger writes go through R2T.
func (q *IOQueue) MaxICD() int { return q.q.maxICD }

// MaxH2CData returns the connection's MAXH2CDATA from ICResp.
func (q *IOQueue) MaxH2CData() uint32 { return q.q.c.maxH2C }

// Outstanding returns the number of asynchronous commands submitted and not reaped.
func (q *IOQueue) Outstanding() int { return q.q.inflight }

// Err returns the error that killed the queue, or nil.
//
// Preconditions: called from the goroutine that drives the queue.
func (q *IOQueue) Err() error { return q.q.err }

// Close closes the queue's connection; commands in flight are lost. It may be called
// from any goroutine, and more than once.
func (q *IOQueue) Close() error {
	if q.closed.CompareAndSwap(false, true) {
		q.q.c.close()
		c := q.ctrl
		c.mu.Lock()
		if c.ioqs[q.qid] == q {
			delete(c.ioqs, q.qid)
		}
		c.mu.Unlock()
	}
	return nil
}

// SubmitRead queues a Read (NVM §3.2.4) of nlb blocks (1..65536) at slba into buf
// under tag (0..Size()-1), which must not be in flight. Nothing is sent until Flush or
// Reap. buf's length is the transfer length; it must not be touched until the tag is
// reaped.
func (q *IOQueue) SubmitRead(nsid uint32, slba uint64, nlb uint32, buf []byte, tag uint16) error {
	return q.submitRW(nvme.NVMRead, nsid, slba, nlb, buf, false, tag)
}

// SubmitWrite queues a Write of nlb blocks from buf, like SubmitRead. fua sets Force
// Unit Access. The data goes in-capsule when it fits MaxICD, otherwise after R2T in
// H2CData PDUs of at most MaxH2CData bytes.
func (q *IOQueue) SubmitWrite(nsid uint32, slba uint64, nlb uint32, buf []byte, fua bool, tag uint16) error {
	return q.submitRW(nvme.NVMWrite, nsid, slba, nlb, buf, fua, tag)
}

func (q *IOQueue) submitRW(op nvme.NVMOpcode, nsid uint32, slba uint64, nlb uint32, buf []byte, fua bool, tag uint16) error {
	if q.q.err != nil {
		return q.q.err
	}
	if int(tag) >= len(q.q.slots) {
		return ErrTagRange
	}
	if q.q.slots[tag].state != slotFree {
		return ErrTagBusy
	}
	if nlb == 0 || nlb > 1<<16 || len(buf) == 0 {
		return ErrBadLength
	}
	sqe := q.q.sqe(int(tag))
	sqe.SetOpcode(uint8(op))
	sqe.SetNSID(nsid)
	sqe.SetSLBA(slba)
	sqe.SetNLB(uint16(nlb - 1))
	sqe.SetFUA(fua)
	q.q.slots[tag].start = time.Now()
	return q.q.submit(int(tag), buf)
}

// Flush sends every submitted capsule with one write (writev).
func (q *IOQueue) Flush() error { return q.q.flush() }

// Reap flushes what was submitted, then blocks until at least one command completes
// and returns every completion available without blocking further (up to len(dst)).
// It fails with ErrNothingOutstanding when no command is in flight, and with
// ErrTimeout (fatal) when nothing arrives for the controller timeout while commands
// are outstanding. On a fatal error it may return completions gathered before it.
func (q *IOQueue) Reap(dst []Completion) (int, error) {
	if q.q.err != nil {
		return 0, q.q.err
	}
	if len(dst) == 0 {
		return 0, nil
	}
	if err := q.q.flush(); err != nil {
		return 0, err
	}
	if q.q.inflight == 0 {
		return 0, ErrNothingOutstanding
	}
	q.arm()
	n := 0
	// Completions after the first came out of the same read, so one clock read per
	// call timestamps them all.
	var now time.Time
	for n < len(dst) && q.q.inflight > 0 {
		if n > 0 && !q.q.c.buffered() {
			break
		}
		idx, err := q.q.step()
		if err != nil {
			return n, err
		}
		if idx < 0 {
			continue
		}
		if n == 0 {
			now = time.Now()
		}
		s := &q.q.slots[idx]
		dst[n] = Completion{
			Tag:     uint16(idx),
			Status:  s.cqe.Status(),
			DW0:     s.cqe.DW0(),
			Latency: now.Sub(s.start),
		}
		q.q.release(idx)
		n++
	}
	return n, nil
}

// arm keeps a read deadline of about the timeout ahead. Re-arming costs a timer
// update, so it is done only once a quarter of the timeout has been used: a stall is
// reported after between 3/4 and all of the timeout.
func (q *IOQueue) arm() {
	if q.timeout <= 0 {
		return
	}
	now := time.Now()
	if q.armed.Sub(now) > q.timeout*3/4 {
		return
	}
	q.armed = now.Add(q.timeout)
	q.q.c.nc.SetReadDeadline(q.armed)
}

// exec runs one command synchronously and returns its completion, whatever the status.
func (q *IOQueue) exec(ctx context.Context, timeout time.Duration, build func(*nvme.SQE), data []byte) (nvme.CQE, error) {
	q.syncMu.Lock()
	defer q.syncMu.Unlock()
	if q.q.err != nil {
		return nvme.CQE{}, q.q.err
	}
	if q.q.inflight > 0 || len(q.q.iov) > 0 {
		return nvme.CQE{}, ErrBusy
	}
	idx := q.q.freeSlot()
	if idx < 0 {
		return nvme.CQE{}, ErrQueueFull
	}
	build(q.q.sqe(idx))
	q.q.slots[idx].start = time.Now()
	if err := q.q.submit(idx, data); err != nil {
		return nvme.CQE{}, err
	}
	if err := q.q.flush(); err != nil {
		return nvme.CQE{}, err
	}

	q.armed = time.Time{}
	defer bound(ctx, timeout, q.q.c.nc.SetReadDeadline)()
	for {
		done, err := q.q.step()
		if err != nil {
			if ctx.Err() != nil {
				return nvme.CQE{}, fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
			return nvme.CQE{}, err
		}
		if done == idx {
			cqe := q.q.slots[idx].cqe
			q.q.release(idx)
			return cqe, nil
		}
	}
}

// do runs a command and turns a failing status into a *StatusError.
func (q *IOQueue) do(ctx context.Context, op string, build func(*nvme.SQE), data []byte) (nvme.CQE, error) {
	cqe, err := q.exec(ctx, q.timeout, build, data)
	if err != nil {
		return cqe, fmt.Errorf("%s: %w", op, err)
	}
	if st := cqe.Status(); !st.Success() {
		return cqe, &StatusError{Status: st, DW0: cqe.DW0(), Op: op}
	}
	return cqe, nil
}

// Exec sends any I/O command synchronously and returns its completion, whatever the
// status: the raw path for tests. CID, PSDT and SGL1 are filled in; data's direction
// follows the opcode.
func (q *IOQueue) Exec(ctx context.Context, sqe *nvme.SQE, data []byte) (nvme.CQE, error) {
	cp := *sqe
	return q.exec(ctx, q.timeout, func(s *nvme.SQE) { *s = cp }, data)
}

// Read reads nlb blocks (1..65536) at slba into buf; len(buf) is the transfer length
// sent in SGL1 (normally nlb times the block size; a mismatch is the target's to
// reject).
func (q *IOQueue) Read(ctx context.Context, nsid uint32, slba uint64, nlb uint32, buf []byte) error {
	if nlb == 0 || nlb > 1<<16 || len(buf) == 0 {
		return ErrBadLength
	}
	_, err := q.do(ctx, "read", func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.NVMRead))
		s.SetNSID(nsid)
		s.SetSLBA(slba)
		s.SetNLB(uint16(nlb - 1))
	}, buf)
	return err
}

// Write writes nlb blocks from buf at slba, in-capsule or through R2T (see
// SubmitWrite). fua sets Force Unit Access.
func (q *IOQueue) Write(ctx context.Context, nsid uint32, slba uint64, nlb uint32, buf []byte, fua bool) error {
	if nlb == 0 || nlb > 1<<16 || len(buf) == 0 {
		return ErrBadLength
	}
	_, err := q.do(ctx, "write", func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.NVMWrite))
		s.SetNSID(nsid)
		s.SetSLBA(slba)
		s.SetNLB(uint16(nlb - 1))
		s.SetFUA(fua)
	}, buf)
	return err
}

// FlushCache sends the NVM Flush command (NVM §3.2.2) for nsid (FFFFFFFFh: all
// namespaces). It is named so to keep Flush for the asynchronous API.
func (q *IOQueue) FlushCache(ctx context.Context, nsid uint32) error {
	_, err := q.do(ctx, "flush", func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.NVMFlush))
		s.SetNSID(nsid)
	}, nil)
	return err
}

// WriteZeroes zeroes nlb blocks at slba (NVM §3.2.8); deac asks the controller to
// deallocate them.
func (q *IOQueue) WriteZeroes(ctx context.Context, nsid uint32, slba uint64, nlb uint32, deac bool) error {
	if nlb == 0 || nlb > 1<<16 {
		return ErrBadLength
	}
	_, err := q.do(ctx, "write zeroes", func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.NVMWriteZeroes))
		s.SetNSID(nsid)
		s.SetSLBA(slba)
		s.SetNLB(uint16(nlb - 1))
		s.SetDEAC(deac)
	}, nil)
	return err
}

// Deallocate sends Dataset Management with the Deallocate attribute (NVM §3.2.3) for
// 1..256 ranges.
func (q *IOQueue) Deallocate(ctx context.Context, nsid uint32, ranges []nvme.DSMRange) error {
	return q.DatasetManagement(ctx, nsid, nvme.DSMDeallocate, ranges)
}

// DatasetManagement sends Dataset Management with attributes attrs (nvme.DSM* bits)
// for 1..256 ranges.
func (q *IOQueue) DatasetManagement(ctx context.Context, nsid uint32, attrs uint32, ranges []nvme.DSMRange) error {
	if len(ranges) == 0 || len(ranges) > 256 {
		return ErrBadLength
	}
	b := make([]byte, len(ranges)*nvme.DSMRangeLen)
	for i, r := range ranges {
		r.Put(b[i*nvme.DSMRangeLen:])
	}
	_, err := q.do(ctx, "dataset management", func(s *nvme.SQE) {
		s.SetOpcode(uint8(nvme.NVMDatasetManagement))
		s.SetNSID(nsid)
		s.SetDSMRanges(len(ranges))
		s.SetCDW11(attrs)
	}, b)
	return err
}
