package initiator

import (
	"context"
	"fmt"
	"time"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// slotState is where a command slot is in its life.
type slotState uint8

const (
	slotFree     slotState = iota
	slotQueued             // submitted: waits for Flush and a place in the command window
	slotInflight           // sent: PDUs naming its ITT are accepted
	slotDone               // completed: res and err are valid until the slot is reaped
)

// senseCap bounds the sense data a Result keeps (fixed format sense is at most 252
// bytes, SPC-4 §4.5.3).
const senseCap = 252

// Result is a SCSI command's outcome (RFC 7143 §11.4, §11.7).
type Result struct {
	Response proto.SCSIResponseCode
	Status   pscsi.Status
	// Overflow, Underflow and Residual are the residual the target reported.
	Overflow, Underflow bool
	Residual            uint32
	// DataIn is the Data-In bytes placed in the buffer, in DataInPDUs PDUs; R2Ts is
	// the R2Ts answered.
	DataIn     uint32
	DataInPDUs int
	R2Ts       int
	// Collapsed: the status came in the last Data-In PDU (S bit, phase collapse).
	Collapsed bool
	// SenseLen is the sense data's length; Sense its decoded form.
	SenseLen int
	Sense    pscsi.Sense
	sense    [senseCap]byte
	// answered: a status arrived (SCSI Response, or Data-In with S).
	answered bool
}

// Good reports a command the target answered with GOOD status.
func (r *Result) Good() bool {
	return r.answered && r.Response == proto.ResponseCompleted && r.Status == pscsi.StatusGood
}

// Answered reports whether the target sent a status for the command.
func (r *Result) Answered() bool { return r.answered }

// SenseData returns the raw sense data (at most 252 bytes of it).
func (r *Result) SenseData() []byte { return r.sense[:min(r.SenseLen, senseCap)] }

// Completion is one finished asynchronous command. Err is nil when the target
// answered (whatever the status); ErrAborted, ErrLoggedOut or a *RejectError when it
// ended without a status.
type Completion struct {
	Tag uint16
	Result
	Err     error
	Latency time.Duration // from Submit to the completion's arrival
}

// Command is a raw SCSI command for Submit and Exec.
type Command struct {
	LUN uint16
	CDB [proto.CDBLen]byte
	// Read and Write say which way the data flows (R and W bits); neither for a
	// command without data. Bidirectional commands are not supported.
	Read, Write bool
	// Data is the write's source or the read's destination; it must hold
	// ExpectedLength bytes and must not be touched until the command completes.
	Data []byte
	// ExpectedLength is the Expected Data Transfer Length; 0 means len(Data).
	ExpectedLength uint32
	// Attr is the task attribute; the zero value (untagged) is sent as SIMPLE.
	Attr proto.TaskAttr
	// Immediate sends the command for immediate delivery (I bit): it takes no place in
	// the command window.
	Immediate bool
}

// slot is one command. Its index is the tag; the ITT sent is the index with a 15-bit
// generation in bits 30:16, so that a PDU for an earlier use of the slot is caught as
// an unknown ITT instead of landing in the wrong command.
type slot struct {
	state slotState
	sync  bool
	gen   uint16
	itt   uint32
	cmdSN uint32
	cmd   proto.SCSICommand
	buf   []byte
	edtl  uint32
	read  bool
	write bool

	// Write: immediate data [0, imm), unsolicited Data-Out [imm, unsolEnd), then
	// what R2Ts solicit, in order from unsolEnd up to solicited.
	imm, unsolEnd, solicited uint32
	r2tSN                    uint32

	// Read: Data-In placed in order up to got; seqBytes of the open sequence.
	got, dataSN, seqBytes uint32
	seqOpen               bool

	start time.Time
	res   Result
	err   error
	hdr   [hdrMax]byte
	ddg   [proto.DigestLen]byte
	uhdr  [][hdrMax]byte
	udg   [][proto.DigestLen]byte
}

// SubmitRead queues a READ(16) of blocks blocks at lba of lun into buf under tag,
// which must not be outstanding. len(buf) is the Expected Data Transfer Length.
// Nothing is sent until Flush or Reap; buf must not be touched until the tag is
// reaped.
func (s *Session) SubmitRead(lun uint16, lba uint64, blocks uint32, buf []byte, tag uint16) error {
	sl, err := s.takeTag(tag, blocks, buf)
	if err != nil {
		return err
	}
	s.prepare(sl, int(tag), lun, true, false, buf, uint32(len(buf)), false)
	sl.cmd.CDB = cdb16(0x88, lba, blocks, false)
	s.enqueue(int(tag))
	return nil
}

// SubmitWrite queues a WRITE(16) of blocks blocks from buf at lba, like SubmitRead;
// fua sets Force Unit Access. The data goes as immediate data, unsolicited Data-Out
// and in answer to R2Ts, as the session negotiated.
func (s *Session) SubmitWrite(lun uint16, lba uint64, blocks uint32, buf []byte, fua bool, tag uint16) error {
	sl, err := s.takeTag(tag, blocks, buf)
	if err != nil {
		return err
	}
	s.prepare(sl, int(tag), lun, false, true, buf, uint32(len(buf)), false)
	sl.cmd.CDB = cdb16(0x8a, lba, blocks, fua)
	s.enqueue(int(tag))
	return nil
}

// Submit queues a raw command under tag, like SubmitRead.
func (s *Session) Submit(c *Command, tag uint16) error {
	if err := s.checkTag(tag); err != nil {
		return err
	}
	edtl, err := checkCommand(c)
	if err != nil {
		return err
	}
	sl := &s.slots[tag]
	s.prepare(sl, int(tag), c.LUN, c.Read, c.Write, c.Data[:edtl], edtl, c.Immediate)
	sl.cmd.CDB = c.CDB
	if c.Attr != proto.TaskUntagged {
		sl.cmd.Attr = c.Attr
	}
	s.enqueue(int(tag))
	return nil
}

func checkCommand(c *Command) (uint32, error) {
	edtl := c.ExpectedLength
	if edtl == 0 {
		edtl = uint32(len(c.Data))
	}
	switch {
	case uint64(len(c.Data)) < uint64(edtl), c.Read && c.Write:
		return 0, ErrBadLength
	case edtl > 0 && !c.Read && !c.Write:
		return 0, ErrBadLength
	}
	return edtl, nil
}

func (s *Session) checkTag(tag uint16) error {
	switch {
	case s.err != nil:
		return s.err
	case s.discovery:
		return ErrDiscovery
	case int(tag) >= s.opts.QueueDepth:
		return ErrTagRange
	case s.slots[tag].state != slotFree:
		return ErrTagBusy
	}
	return nil
}

func (s *Session) takeTag(tag uint16, blocks uint32, buf []byte) (*slot, error) {
	if err := s.checkTag(tag); err != nil {
		return nil, err
	}
	if blocks == 0 || len(buf) == 0 || uint64(len(buf)) > 1<<32-1 {
		return nil, ErrBadLength
	}
	return &s.slots[tag], nil
}

// cdb16 builds READ(16) (0x88) or WRITE(16) (0x8a): LBA @2, transfer length @10, FUA
// byte 1 bit 3 (SBC-4 §5.17, §5.45).
func cdb16(op byte, lba uint64, blocks uint32, fua bool) [proto.CDBLen]byte {
	var c [proto.CDBLen]byte
	c[0] = op
	if fua {
		c[1] = 0x08
	}
	for i := range 8 {
		c[2+i] = byte(lba >> (56 - 8*i))
	}
	c[10], c[11], c[12], c[13] = byte(blocks>>24), byte(blocks>>16), byte(blocks>>8), byte(blocks)
	return c
}

// prepare fills slot idx for a command and lays its write data out: immediate data up
// to FirstBurstLength and the target's segment size when ImmediateData=Yes, then
// unsolicited Data-Out up to FirstBurstLength when InitialR2T=No (RFC 7143 §13.10,
// §13.11, §13.14); R2Ts solicit the rest.
func (s *Session) prepare(sl *slot, idx int, lun uint16, read, write bool, buf []byte, edtl uint32,
	immediate bool) {
	p := &s.params
	sl.gen = (sl.gen + 1) & 0x7fff
	sl.itt = uint32(sl.gen)<<16 | uint32(idx)
	sl.cmd = proto.SCSICommand{Immediate: immediate, Final: true, Read: read, Write: write,
		Attr: proto.TaskSimple, LUN: lunField(lun), ITT: sl.itt, ExpectedDataTransferLength: edtl}
	sl.buf, sl.edtl, sl.read, sl.write = buf, edtl, read, write
	sl.imm, sl.unsolEnd, sl.solicited, sl.r2tSN = 0, 0, 0, 0
	sl.got, sl.dataSN, sl.seqBytes, sl.seqOpen = 0, 0, 0, false
	sl.res, sl.err, sl.sync = Result{}, nil, false
	if write {
		if p.ImmediateData {
			sl.imm = min(edtl, p.FirstBurstLength, s.maxXmit)
		}
		sl.unsolEnd = sl.imm
		if !p.InitialR2T {
			sl.unsolEnd = max(sl.imm, min(edtl, p.FirstBurstLength, uint32(len(sl.uhdr))*s.maxXmit))
		}
		sl.solicited = sl.unsolEnd
		sl.cmd.DataSegmentLength = sl.imm
		sl.cmd.Final = sl.unsolEnd == sl.imm
	}
	sl.state = slotQueued
	sl.start = time.Now()
}

func (s *Session) enqueue(idx int) {
	s.queue.push(uint16(idx))
	if !s.slots[idx].sync {
		s.nOut++
	}
}

// Flush sends every queued command the command window admits, with one writev. The
// rest go out as the target opens the window, while Reap (or a synchronous helper)
// runs.
func (s *Session) Flush() error {
	if s.err != nil {
		return s.err
	}
	s.arm()
	return s.flush()
}

// flush frames queued commands, in CmdSN order, while the window admits them
// (ExpCmdSN <= CmdSN <= MaxCmdSN, RFC 7143 §4.2.2.1), and writes them.
func (s *Session) flush() error {
	if s.err != nil {
		return s.err
	}
	for s.queue.size > 0 {
		sl := &s.slots[s.queue.peek()]
		if !sl.cmd.Immediate && !proto.SNLessEq(s.cmdSN, s.maxCmdSN) {
			break
		}
		if len(s.iov)+4*(1+len(sl.uhdr)) > cap(s.iov) {
			if err := s.writeIOV(); err != nil {
				return err
			}
		}
		s.queue.pop()
		s.frameCommand(sl)
	}
	return s.writeIOV()
}

func (s *Session) writeIOV() error {
	if len(s.iov) == 0 {
		return nil
	}
	s.wv = s.iov
	err := s.writev(&s.wv)
	clear(s.iovBack[:len(s.iov)]) // drop references to caller buffers
	s.iov = s.iovBack[:0]
	if err != nil {
		return s.fail(err)
	}
	return nil
}

// frameCommand gives a queued command its CmdSN and frames it with its immediate data
// and unsolicited Data-Out (TTT 0xffffffff, DataSN from 0, F on the last).
func (s *Session) frameCommand(sl *slot) {
	sl.cmd.CmdSN = s.cmdSN
	if !sl.cmd.Immediate {
		s.cmdSN++
	}
	sl.cmdSN = sl.cmd.CmdSN
	sl.cmd.ExpStatSN = s.expStatSN
	sl.cmd.Put((*proto.BHS)(sl.hdr[:proto.BHSLen]))
	s.iov = s.frame(s.iov, &sl.hdr, sl.buf[:sl.imm], &sl.ddg)
	for off, sn := sl.imm, uint32(0); off < sl.unsolEnd; sn++ {
		n := min(sl.unsolEnd-off, s.maxXmit)
		d := proto.DataOut{Final: off+n == sl.unsolEnd, DataSegmentLength: n, LUN: sl.cmd.LUN,
			ITT: sl.itt, TTT: proto.ReservedTag, ExpStatSN: s.expStatSN, DataSN: sn, BufferOffset: off}
		d.Put((*proto.BHS)(sl.uhdr[sn][:proto.BHSLen]))
		s.iov = s.frame(s.iov, &sl.uhdr[sn], sl.buf[off:off+n], &sl.udg[sn])
		off += n
	}
	sl.state = slotInflight
	s.nWire++
}

// complete ends a command: its status arrived, or err says why none will.
func (s *Session) complete(sl *slot, idx int, err error) {
	sl.state = slotDone
	sl.err = err
	s.nWire--
	if !sl.sync {
		s.done.push(uint16(idx))
	}
}

// Reap flushes what was submitted, then blocks until at least one command completes,
// and returns every completion available without blocking further (up to len(dst)).
// Completions gathered while a synchronous helper ran come first, without blocking. It
// fails with ErrNothingOutstanding when no command is outstanding, and with
// ErrTimeout (fatal) when nothing arrives for the timeout while commands are
// outstanding. On a fatal error it returns the completions gathered before it.
func (s *Session) Reap(dst []Completion) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	if n := s.drain(dst); n > 0 {
		return n, nil
	}
	if s.err != nil {
		return 0, s.err
	}
	if s.nOut == 0 {
		return 0, ErrNothingOutstanding
	}
	s.arm()
	if err := s.flush(); err != nil {
		return 0, err
	}
	for s.done.size == 0 {
		if err := s.step(); err != nil {
			return s.drain(dst), err
		}
	}
	for s.done.size < len(dst) && s.nWire > 0 && s.buffered() {
		if err := s.step(); err != nil {
			break
		}
	}
	return s.drain(dst), nil
}

// Poll handles what the target has sent without waiting for more (answering its
// pings on the way) and returns the completions available. An idle session that is
// neither reaped nor polled leaves target pings unanswered, and the target drops it
// after its NOP timeout.
func (s *Session) Poll(dst []Completion) (int, error) {
	if s.err != nil {
		return s.drain(dst), s.err
	}
	if err := s.flush(); err != nil {
		return s.drain(dst), err
	}
	if !s.buffered() {
		// Pull what the socket holds into the buffer: a read deadline just ahead
		// makes the fill return at once, or after a millisecond when nothing came (a
		// deadline already past would not even try the read); Peek consumes nothing.
		s.nc.SetReadDeadline(time.Now().Add(time.Millisecond))
		s.br.Peek(min(s.br.Buffered()+1, readBufSize))
		s.nc.SetReadDeadline(time.Time{})
		s.armed = time.Time{}
	}
	for s.buffered() && s.done.size < len(s.done.buf) {
		if err := s.step(); err != nil {
			return s.drain(dst), err
		}
	}
	return s.drain(dst), nil
}

// drain moves completed asynchronous commands into dst and frees their tags.
func (s *Session) drain(dst []Completion) int {
	n := 0
	var now time.Time
	for n < len(dst) && s.done.size > 0 {
		if n == 0 {
			now = time.Now()
		}
		idx := s.done.pop()
		sl := &s.slots[idx]
		dst[n].Tag = idx
		dst[n].Result = sl.res
		dst[n].Err = sl.err
		dst[n].Latency = now.Sub(sl.start)
		s.release(sl)
		s.nOut--
		n++
	}
	return n
}

func (s *Session) release(sl *slot) {
	sl.state = slotFree
	sl.buf = nil
	sl.err = nil
	sl.sync = false
}

// step reads and handles one PDU, then sends the queued commands the window now
// admits.
func (s *Session) step() error {
	if s.err != nil {
		return s.err
	}
	err := s.readHeader()
	if err == nil {
		err = s.dispatch()
	}
	if err == nil && s.queue.size > 0 {
		err = s.flush()
	}
	if err != nil {
		return s.fail(err)
	}
	return nil
}

// Exec runs a raw command synchronously and returns its outcome, whatever the SCSI
// status; the error is for what prevented an outcome (transport, protocol violation,
// Reject, abort). Asynchronous commands may be outstanding meanwhile.
func (s *Session) Exec(ctx context.Context, c *Command) (Result, error) {
	if s.err != nil {
		return Result{}, s.err
	}
	if s.discovery {
		return Result{}, ErrDiscovery
	}
	edtl, err := checkCommand(c)
	if err != nil {
		return Result{}, err
	}
	idx := s.opts.QueueDepth
	sl := &s.slots[idx]
	s.prepare(sl, idx, c.LUN, c.Read, c.Write, c.Data[:edtl], edtl, c.Immediate)
	sl.cmd.CDB = c.CDB
	if c.Attr != proto.TaskUntagged {
		sl.cmd.Attr = c.Attr
	}
	sl.sync = true
	s.enqueue(idx)
	return s.wait(ctx, sl)
}

// wait sends the synchronous slot and handles PDUs until it completes.
func (s *Session) wait(ctx context.Context, sl *slot) (Result, error) {
	defer s.release(sl)
	s.armed = time.Time{}
	defer bound(ctx, s.timeout, s.nc.SetDeadline)()
	if err := s.flush(); err != nil {
		return Result{}, err
	}
	for sl.state != slotDone {
		if err := s.step(); err != nil {
			if ctx.Err() != nil {
				return Result{}, fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
			return Result{}, err
		}
	}
	return sl.res, sl.err
}
