package iscsi

import (
	"encoding/binary"

	"sluice/engine/mem"
	"sluice/engine/probe"
	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
	"sluice/engine/scsi"
	"sluice/engine/tcpconn"
)

const (
	// dataInBatch is the Data-In PDUs a task queues at a time; the next batch goes
	// when the last PDU of this one has been written. It bounds a task's share of the
	// send queue whatever MaxRecvDataSegmentLength the initiator declared.
	dataInBatch = 4
	// entriesPerTask is the most send queue entries a task holds: a Data-In batch
	// (header, data, pad, digest each) or its R2Ts, then the response (header, sense,
	// pad, digest).
	entriesPerTask = dataInBatch*4 + 4
	// immediateSlots are task slots beyond the queue depth, for immediate commands,
	// which the CmdSN window does not bound.
	immediateSlots = 8
	// noTag is the reserved tag value (0xffffffff).
	noTag = proto.ReservedTag
	// minTaskBuffer is the data buffer a task may take even when the LU's Block
	// Limits are smaller (parameter lists, COMPARE AND WRITE's two halves).
	minTaskBuffer = 1 << 20
)

// taskPhase is where a task is between its SCSI Command and its last PDU leaving.
type taskPhase uint8

const (
	taskFree      taskPhase = iota
	taskReceiving           // a write waiting for its Data-Out
	taskExecuting           // inside the SCSI layer
	taskSending             // Data-In and response queued; freed when they have gone
)

// sequence is one Data-Out sequence the target expects: the unsolicited one, or the
// answer to one R2T. DataPDUInOrder=Yes: its PDUs come at increasing offsets without
// gaps, numbered from DataSN 0.
type sequence struct {
	ttt      uint32
	begin    uint32
	next     uint32 // next expected buffer offset
	end      uint32
	dataSN   uint32
	open     bool
	progress int64 // when the sequence last advanced (R2T sent, data received)
}

// task is one SCSI command slot of a connection, allocated when the connection enters
// full feature phase and reused for every command, so a READ or WRITE allocates
// nothing on the Go heap (its data buffer comes from the reactor's slab allocator).
type task struct {
	c     *conn
	idx   uint16
	st    scsi.Task
	phase taskPhase
	// answered: the command's place in the CmdSN window was given back.
	answered bool

	itt, cmdSN uint32
	immediate  bool
	lu         *scsi.LU // nil for a LUN with no LU (the LUN map answers)
	read       bool
	write      bool
	edtl       uint32
	want       uint32 // data the target moves: min(EDTL, the command's transfer length)
	noBuffer   bool   // the command's data exceeds what a task buffers: it fails
	noMemory   bool   // the allocator had no room: the command is answered TASK SET FULL
	buf        mem.Buf
	extCDB     [proto.MaxCDBLen]byte

	// Write.
	got         uint32 // bytes of Data-Out placed in buf
	unsol       sequence
	unsolLimit  uint32 // where unsolicited data must stop
	unsolWant   uint32 // where the unsolicited sequence is expected to end
	r2t         [maxR2TPerTask]sequence
	r2tOpen     int
	r2tSN       uint32
	nextOffset  uint32 // the next offset to solicit
	holeOff     uint32 // a stretch unsolicited data should have covered and did not
	holeEnd     uint32
	awaited     uint32 // bytes counted in the awaited-data budgets
	stalled     bool
	abandon     bool // aborted before executing: freed once nothing of it is queued
	tmfWaiting  *tmfWait
	dataOutPDUs uint32
	arrivedNs   int64 // when the command arrived, for the tracer's latency

	// Data-In and response.
	total    uint32 // Data-In bytes to send
	sent     uint32 // Data-In bytes queued
	dataSN   uint32
	status   bool // the status went into the last Data-In (phase collapse)
	resid    uint32
	over     bool
	under    bool
	releases int // Sent notifications outstanding
	done     bool

	hdrs    [dataInBatch][proto.BHSLen + proto.DigestLen]byte
	ddg     [dataInBatch][proto.DigestLen]byte
	r2th    [maxR2TPerTask][proto.BHSLen + proto.DigestLen]byte
	rsp     [proto.BHSLen + proto.DigestLen]byte
	sense   [proto.SenseLengthLen + scsi.SenseCap + 3]byte
	senseDg [proto.DigestLen]byte
}

// zeroPad is what pads data segments to a multiple of 4 bytes.
var zeroPad [4]byte

func (c *conn) initTasks(n int) {
	c.tasks = make([]task, n)
	c.free = make([]uint16, 0, n)
	for i := n - 1; i >= 0; i-- {
		tk := &c.tasks[i]
		tk.c, tk.idx = c, uint16(i)
		tk.st.Done = tk.executed
		c.free = append(c.free, uint16(i))
	}
}

func (c *conn) getTask() *task {
	n := len(c.free)
	if n == 0 {
		return nil
	}
	tk := &c.tasks[c.free[n-1]]
	c.free = c.free[:n-1]
	return tk
}

// busyTasks counts tasks whose memory the SCSI layer or the send queue still uses.
func (c *conn) busyTasks() int {
	n := 0
	for i := range c.tasks {
		if c.tasks[i].phase == taskExecuting {
			n++
		}
	}
	return n
}

// releaseIdleTasks ends the tasks that wait for data which will never come now.
func (c *conn) releaseIdleTasks() {
	for i := range c.tasks {
		tk := &c.tasks[i]
		if tk.phase == taskReceiving {
			tk.finishAbandoned()
		}
	}
}

func (c *conn) releaseTaskBuffers() {
	for i := range c.tasks {
		tk := &c.tasks[i]
		if !tk.buf.IsZero() {
			c.pg.mem.Free(tk.buf)
			tk.buf = mem.Buf{}
		}
	}
}

// taskByITT finds a live task of the connection.
func (c *conn) taskByITT(itt uint32) *task {
	for i := range c.tasks {
		tk := &c.tasks[i]
		if tk.phase != taskFree && tk.itt == itt && !tk.abandon {
			return tk
		}
	}
	return nil
}

// beginCommand takes a SCSI Command header: it checks the CmdSN, takes a task slot and
// a buffer, and aims the immediate data at the buffer. It reports false when the
// connection is closing.
func (c *conn) beginCommand() bool {
	cmd, _ := proto.DecodeSCSICommand(c.bhs())
	s := c.sess
	if s.node == nil {
		c.reject(proto.RejectProtocolError)
		c.closeAfterSend("SCSI command on a discovery session")
		return false
	}
	if c.state != connFull || s.closing {
		return true
	}
	if !s.acceptCmdSN(cmd.CmdSN, cmd.Immediate) {
		c.pg.t.counters.cmdSNDropped.Add(1)
		return true
	}
	if c.taskByITT(cmd.ITT) != nil {
		// RFC 7143 §11.17.1: a command with the tag of a task still in progress.
		if !cmd.Immediate {
			s.answered() // an immediate command never took a window slot
		}
		c.reject(proto.RejectTaskInProgress)
		return true
	}
	tk := c.getTask()
	if tk == nil {
		// Only immediate commands can exceed the window; the slots beyond the queue
		// depth are spent.
		if !cmd.Immediate {
			s.answered()
		}
		c.reject(proto.RejectImmediateCommand)
		return true
	}
	if !tk.setup(&cmd) {
		return false
	}
	if c.lay.DataLen > 0 {
		if !tk.write || !s.p.ImmediateData || cmd.DataSegmentLength > tk.unsolLimit {
			tk.abandonWith(proto.RejectProtocolError, "immediate data beyond FirstBurstLength or on a read")
			return false
		}
		tk.unsol.next = cmd.DataSegmentLength
		tk.got = min(cmd.DataSegmentLength, tk.want)
		if !tk.buf.IsZero() {
			c.dst = tk.buf.Bytes()[:tk.got]
		}
	}
	c.curTask = tk
	return true
}

// setup fills the task from the command and allocates its buffer.
func (tk *task) setup(cmd *proto.SCSICommand) bool {
	c, s := tk.c, tk.c.sess
	tk.reset()
	tk.phase = taskReceiving
	tk.arrivedNs = c.pg.r.Now()
	tk.itt, tk.cmdSN, tk.immediate = cmd.ITT, cmd.CmdSN, cmd.Immediate
	tk.read, tk.write, tk.edtl = cmd.Read, cmd.Write, cmd.ExpectedDataTransferLength
	st := &tk.st
	st.CDB = cmd.CDB
	st.LUN = cmd.LUN
	st.Attr = scsi.TaskAttr(cmd.Attr)
	st.ExpectedLen = tk.edtl
	if c.lay.AHSLen > 0 {
		ahs, err := proto.ParseCommandAHS(c.hdr[proto.BHSLen:c.lay.HeaderLen()])
		if err != nil {
			tk.abandonWith(proto.RejectInvalidPDUField, "bad AHS")
			return false
		}
		if ahs.ExtendedCDB != nil {
			n := copy(tk.extCDB[:], cmd.CDB[:])
			n += copy(tk.extCDB[n:], ahs.ExtendedCDB)
			st.ExtCDB = tk.extCDB[:n]
		}
	}
	tk.lu = s.lookupLU(cmd.LUN)
	dir, spdtl := s.node.luns.Prepare(st)
	tk.want = uint32(min(uint64(tk.edtl), spdtl))
	if (dir == pscsi.DirOut && !tk.write) || (dir == pscsi.DirIn && !tk.read) {
		// The CDB moves data the PDU did not announce (RFC 7143 §11.3.1: W and R
		// say which way EDTL bytes flow): nothing is transferred; the device server
		// answers from a zero-length buffer, the residual says what was not moved.
		tk.want = 0
	}
	if tk.want > tk.maxBuffer() {
		tk.want, tk.noBuffer = 0, true
	}
	if tk.want > 0 {
		b, err := c.pg.mem.Alloc(int(tk.want))
		if err != nil {
			tk.want, tk.noMemory = 0, true
		} else {
			tk.buf = b
		}
	}
	tk.unsolLimit = 0
	if tk.write {
		first := min(s.p.FirstBurstLength, tk.edtl)
		if s.p.ImmediateData || !s.p.InitialR2T {
			tk.unsolLimit = first
		}
		tk.unsol = sequence{ttt: noTag, open: !cmd.Final, end: first, progress: c.pg.r.Now()}
		if cmd.Final || s.p.InitialR2T {
			tk.unsol.end = min(cmd.DataSegmentLength, first)
		}
		if !cmd.Final && s.p.InitialR2T {
			// Unsolicited Data-Out was not negotiated.
			tk.abandonWith(proto.RejectProtocolError, "unsolicited data with InitialR2T=Yes")
			return false
		}
		tk.unsolWant = tk.unsol.end
		tk.nextOffset = max(tk.unsol.end, min(cmd.DataSegmentLength, first))
	}
	return true
}

// reset clears a free slot for a new command, keeping what is bound once.
func (tk *task) reset() {
	tk.st = scsi.Task{Done: tk.st.Done}
	tk.answered, tk.lu, tk.noBuffer, tk.noMemory = false, nil, false, false
	tk.got, tk.unsol, tk.unsolLimit, tk.unsolWant = 0, sequence{}, 0, 0
	tk.r2t, tk.r2tOpen, tk.r2tSN, tk.nextOffset = [maxR2TPerTask]sequence{}, 0, 0, 0
	tk.holeOff, tk.holeEnd, tk.awaited, tk.stalled, tk.abandon = 0, 0, 0, false, false
	tk.tmfWaiting, tk.dataOutPDUs = nil, 0
	tk.total, tk.sent, tk.dataSN, tk.status = 0, 0, 0, false
	tk.resid, tk.over, tk.under, tk.releases, tk.done = 0, false, false, 0, false
}

// maxBuffer is the most data a task buffers: the LU's MAXIMUM TRANSFER LENGTH, at
// least minTaskBuffer.
func (tk *task) maxBuffer() uint32 {
	n := uint64(minTaskBuffer)
	if tk.lu != nil {
		if m := uint64(tk.lu.Limits().MaxTransferLength) * uint64(tk.lu.BlockSize()); m > n {
			n = m
		}
	}
	return uint32(min(n, 1<<30))
}

// commandArrived runs once the SCSI Command PDU and its immediate data are in.
func (tk *task) commandArrived() {
	if !tk.write || tk.want == 0 && !tk.unsol.open {
		tk.execute()
		return
	}
	tk.solicit()
	tk.maybeExecute()
}

// abandonWith answers a malformed command with a Reject and ends the connection: at
// ErrorRecoveryLevel 0 the initiator recovers by logging in again.
func (tk *task) abandonWith(reason proto.RejectReason, why string) {
	c := tk.c
	tk.finishAbandoned()
	c.reject(reason)
	c.closeAfterSend("protocol error: " + why)
}

// beginDataOut checks a Data-Out header against the task it belongs to and aims its
// data at the task's buffer. A Data-Out for no live task is rejected and its data
// dropped (SPDK does the same with the Data-Out of tasks a TMF ended); one that breaks
// the order of its sequence ends the connection.
func (c *conn) beginDataOut() bool {
	d, _ := proto.DecodeDataOut(c.bhs())
	tk := c.taskByITT(d.ITT)
	if tk == nil || tk.phase != taskReceiving {
		c.reject(proto.RejectInvalidPDUField)
		return true
	}
	var seq *sequence
	if d.TTT == noTag {
		if tk.unsol.open {
			seq = &tk.unsol
		}
	} else {
		for i := range tk.r2t {
			if r := &tk.r2t[i]; r.open && r.ttt == d.TTT {
				seq = r
				break
			}
		}
	}
	if seq == nil {
		c.reject(proto.RejectInvalidPDUField)
		return true
	}
	end := uint64(d.BufferOffset) + uint64(d.DataSegmentLength)
	limit := seq.end
	if seq == &tk.unsol {
		limit = tk.unsolLimit
	}
	switch {
	case d.DataSN != seq.dataSN:
		// As SPDK at ErrorRecoveryLevel 0: the PDU is rejected and its data dropped;
		// the connection goes on, and the task waits for the data it still lacks
		// (the Data-Out timeout ends it if the initiator never sends it).
		c.reject(proto.RejectProtocolError)
		return true
	case d.BufferOffset != seq.next || end > uint64(limit):
		tk.abandonWith(proto.RejectProtocolError, "Data-Out offset or length outside its sequence")
		return false
	case d.Final && seq != &tk.unsol && end != uint64(seq.end):
		tk.abandonWith(proto.RejectProtocolError, "Data-Out sequence ended short of its R2T")
		return false
	}
	seq.dataSN++
	seq.next = uint32(end)
	seq.progress = c.pg.r.Now()
	if d.Final || (seq != &tk.unsol && seq.next == seq.end) {
		seq.open = false
		if seq == &tk.unsol && seq.next < tk.unsolWant && seq.next < tk.want {
			// The unsolicited sequence ended early: solicit what it left out.
			tk.holeOff, tk.holeEnd = seq.next, min(tk.unsolWant, tk.want)
		}
	}
	tk.dataOutPDUs++
	if !tk.buf.IsZero() && d.BufferOffset < tk.want {
		stop := min(uint32(end), tk.want)
		c.dst = tk.buf.Bytes()[d.BufferOffset:stop]
		tk.got += stop - d.BufferOffset
	}
	c.curTask = tk
	return true
}

// dataOutArrived runs once a Data-Out PDU's data is in.
func (tk *task) dataOutArrived() {
	if tk.phase != taskReceiving {
		return
	}
	for i := range tk.r2t {
		r := &tk.r2t[i]
		if !r.open && r.ttt != 0 {
			tk.r2tClosed(r)
		}
	}
	if tk.abandon {
		if tk.r2tOpen == 0 && !tk.unsol.open {
			tk.finishAbandoned()
		}
		return
	}
	tk.solicit()
	tk.maybeExecute()
}

// r2tClosed retires an answered R2T and its share of the awaited-data budgets.
func (tk *task) r2tClosed(r *sequence) {
	tk.releaseAwaited(r.end - r.begin)
	*r = sequence{}
	tk.r2tOpen--
}

// solicit sends R2Ts for data still wanted, as many as MaxOutstandingR2T allows and
// the awaited-data budgets take; a task over budget waits on the poll group.
func (tk *task) solicit() {
	c := tk.c
	if tk.abandon || tk.phase != taskReceiving || !c.serving() || tk.stalled {
		return
	}
	p := &c.sess.p
	for tk.r2tOpen < int(p.MaxOutstandingR2T) {
		off, end := tk.nextOffset, tk.want
		hole := tk.holeEnd > 0
		if hole {
			off, end = tk.holeOff, tk.holeEnd
		}
		if off >= end {
			return
		}
		n := min(end-off, p.MaxBurstLength)
		if !c.mayAwait(n) {
			tk.stalled = true
			c.pg.t.limits.CountQuotaWait()
			c.pg.stalled = append(c.pg.stalled, tk)
			return
		}
		if hole {
			if tk.holeOff += n; tk.holeOff >= tk.holeEnd {
				tk.holeOff, tk.holeEnd = 0, 0
			}
		} else {
			tk.nextOffset += n
		}
		tk.sendR2T(off, n)
	}
}

// resumeSolicit retries a task that waited for awaited-data budget.
func (tk *task) resumeSolicit() {
	tk.stalled = false
	if tk.phase == taskReceiving {
		tk.solicit()
	}
}

// mayAwait reports whether n more bytes may be solicited. A connection that awaits
// nothing always may, so that every connection makes progress.
func (c *conn) mayAwait(n uint32) bool {
	if c.awaited == 0 {
		return true
	}
	return c.awaited+uint64(n) <= uint64(c.pg.t.limits.MaxAwaitedDataBytes()) &&
		c.pg.awaited+uint64(n) <= c.pg.awaitedCap
}

func (tk *task) releaseAwaited(n uint32) {
	n = min(n, tk.awaited)
	tk.awaited -= n
	tk.c.awaited -= uint64(n)
	tk.c.pg.awaited -= uint64(n)
}

func (tk *task) sendR2T(off, n uint32) {
	c := tk.c
	i := 0
	for tk.r2t[i].open || tk.r2t[i].ttt != 0 {
		i++
	}
	ttt := c.newTTT()
	tk.r2t[i] = sequence{ttt: ttt, begin: off, next: off, end: off + n, open: true, progress: c.pg.r.Now()}
	tk.r2tOpen++
	tk.awaited += n
	c.awaited += uint64(n)
	c.pg.awaited += uint64(n)
	h := tk.r2th[i][:]
	pdu := proto.R2T{LUN: proto.LUN(tk.st.LUN), ITT: tk.itt, TTT: ttt, StatSN: c.statSN,
		ExpCmdSN: c.sess.expCmdSN, MaxCmdSN: c.sess.maxCmdSN(), R2TSN: tk.r2tSN,
		BufferOffset: off, DesiredDataTransferLength: n}
	pdu.Put((*proto.BHS)(h[:proto.BHSLen]))
	tk.r2tSN++
	c.queueData(h, nil, nil, tk)
}

// newTTT returns a target transfer tag that is neither 0 (a free R2T slot) nor the
// reserved value.
func (c *conn) newTTT() uint32 {
	c.nextTTT++
	if c.nextTTT == 0 || c.nextTTT == noTag {
		c.nextTTT = 1
	}
	return c.nextTTT
}

// maybeExecute runs a write once all its data is in.
func (tk *task) maybeExecute() {
	if tk.phase == taskReceiving && !tk.abandon && !tk.unsol.open && tk.r2tOpen == 0 &&
		tk.holeEnd == 0 && tk.nextOffset >= tk.want && !tk.stalled {
		tk.execute()
	}
}

// execute hands the command to the SCSI layer, or answers it here when the transport
// already knows the outcome.
func (tk *task) execute() {
	c := tk.c
	st := &tk.st
	tk.phase = taskExecuting
	if probe.IOEnabled() && tk.lu != nil {
		// The latency a tracer shows counts from the command's arrival: a write's
		// wait for its Data-Out is part of what the initiator sees.
		now := c.pg.r.Now()
		probe.IOStart(tk.lu.Bdev().Name(), c.pg.r.ID(), tk.probeKey(), tk.arrivedNs, now-tk.arrivedNs)
	}
	if !tk.buf.IsZero() {
		n := tk.want
		if tk.write {
			n = min(tk.got, tk.want)
		}
		st.Data = tk.buf.Bytes()[:n]
		if fb := tk.buf.FixedBuffer(); fb >= 0 {
			st.FixedBuf = uint32(fb) + 1
		}
	}
	switch {
	case tk.noMemory:
		// No buffer memory now: TASK SET FULL makes the initiator retry later
		// (SAM-5 §5.3.1), as a busy device would ask.
		st.Status = pscsi.StatusTaskSetFull
		tk.executed(st)
		return
	}
	c.sess.mc.Execute(c.sess.ss, st)
}

// executed is the SCSI layer's Done: the command ended.
func (tk *task) executed(*scsi.Task) {
	c := tk.c
	st := &tk.st
	if probe.IOEnabled() && tk.lu != nil {
		probe.IODone(tk.lu.Bdev().Name(), c.pg.r.ID(), tk.probeKey(), tk.arrivedNs, int64(st.Status))
	}
	if st.Aborted == scsi.AbortedByNexus {
		// SAM-5 §7.2: the task management response covers it; no status is sent.
		tk.finishAbandoned()
		return
	}
	if !c.serving() {
		// The connection is going away: nobody is left to answer.
		tk.finishAbandoned()
		c.maybeFinishClose()
		return
	}
	tk.phase = taskSending
	if tk.read && len(st.Data) > 0 {
		tk.total = uint32(min(st.Produced, uint64(len(st.Data))))
	}
	produced := uint32(min(st.Produced, uint64(^uint32(0))))
	switch {
	case tk.total > 0:
		var d proto.DataIn
		d.SetResidual(tk.edtl, produced)
		tk.over, tk.under, tk.resid = d.Overflow, d.Underflow, d.ResidualCount
		tk.status = st.Status == pscsi.StatusGood && st.SenseLen == 0
		tk.sendDataIn()
	default:
		tk.sendResponse(produced)
	}
	if c.logout != nil {
		c.maybeAnswerLogout()
	}
}

// probeKey names the task to the tracer: unique among live tasks of the process.
func (tk *task) probeKey() uint64 { return uint64(tk.c.sock.FD)<<16 | uint64(tk.idx) }

// answerWindow frees the command's place in the CmdSN window.
func (tk *task) answerWindow() {
	if !tk.answered {
		tk.answered = true
		if !tk.immediate {
			tk.c.sess.answered()
		}
	}
}

// sendDataIn queues the next batch of Data-In PDUs: segments of at most the
// initiator's MaxRecvDataSegmentLength, F at the end of each MaxBurstLength sequence
// and of the data, and the status folded into the last PDU when it is GOOD.
func (tk *task) sendDataIn() {
	c := tk.c
	data := tk.st.Data[:tk.total]
	seg := c.params.MaxXmitDataSegmentLength
	burst := c.sess.p.MaxBurstLength
	for k := 0; k < dataInBatch && tk.sent < tk.total; k++ {
		off := tk.sent
		n := min(seg, tk.total-off)
		// A sequence ends at each MaxBurstLength boundary (RFC 7143 §13.13).
		if b := burst - off%burst; n > b {
			n = b
		}
		last := off+n == tk.total
		d := proto.DataIn{Final: last || (off+n)%burst == 0, TTT: noTag, ITT: tk.itt,
			LUN: proto.LUN(tk.st.LUN), DataSegmentLength: n, DataSN: tk.dataSN, BufferOffset: off,
			ExpCmdSN: c.sess.expCmdSN}
		if last && tk.status {
			tk.answerWindow()
			d.HasStatus, d.Status = true, uint8(tk.st.Status)
			d.Overflow, d.Underflow, d.ResidualCount = tk.over, tk.under, tk.resid
			d.StatSN = c.nextStatSN()
		}
		d.MaxCmdSN = c.sess.maxCmdSN()
		h := tk.hdrs[k][:]
		d.Put((*proto.BHS)(h[:proto.BHSLen]))
		tk.dataSN++
		tk.sent += n
		var rel *task
		if k == dataInBatch-1 || last {
			rel = tk
		}
		c.queueData(h, data[off:off+n], tk.ddg[k][:], rel)
	}
	if tk.sent == tk.total && !tk.status {
		tk.sendResponse(uint32(min(tk.st.Produced, uint64(^uint32(0)))))
	} else if tk.sent == tk.total {
		tk.done = true
	}
}

// queueData queues one PDU's header, data, padding and data digest; rel, when not
// nil, is told once the PDU's last buffer has gone.
func (c *conn) queueData(h, data, dg []byte, rel *task) {
	hdr := c.sealHeader(h)
	var r tcpconn.Releaser
	if rel != nil {
		rel.releases++
		r = rel
	}
	c.pg.markDirty(c)
	if len(data) == 0 {
		c.sq.Push(hdr, r)
		return
	}
	pad := proto.PadLen(uint32(len(data)))
	digest := c.params.DataDigest
	c.sq.Push(hdr, nil)
	if pad == 0 && !digest {
		c.sq.Push(data, r)
		return
	}
	c.sq.Push(data, nil)
	if pad > 0 {
		if !digest {
			c.sq.Push(zeroPad[:pad], r)
			return
		}
		c.sq.Push(zeroPad[:pad], nil)
	}
	crc := proto.DataDigestPad(proto.CRC32CUpdate(0, data), uint32(len(data)))
	proto.PutDigest(dg, crc)
	c.sq.Push(dg, r)
}

// sendResponse queues the SCSI Response, with sense data after a CHECK CONDITION.
func (tk *task) sendResponse(produced uint32) {
	c := tk.c
	st := &tk.st
	tk.answerWindow()
	r := proto.SCSIResponse{Response: proto.ResponseCompleted, Status: uint8(st.Status),
		ITT: tk.itt, StatSN: c.nextStatSN(), ExpCmdSN: c.sess.expCmdSN, MaxCmdSN: c.sess.maxCmdSN(),
		ExpDataSN: tk.dataSN}
	r.SetResidual(tk.edtl, produced)
	var data []byte
	if st.SenseLen > 0 {
		binary.BigEndian.PutUint16(tk.sense[:2], uint16(st.SenseLen))
		n := copy(tk.sense[2:], st.Sense[:st.SenseLen])
		data = tk.sense[:2+n]
	}
	r.DataSegmentLength = uint32(len(data))
	h := tk.rsp[:]
	r.Put((*proto.BHS)(h[:proto.BHSLen]))
	tk.done = true
	c.queueData(h, data, tk.senseDg[:], tk)
}

// Sent is told when a buffer the task queued with itself as Releaser has gone.
func (tk *task) Sent() {
	tk.releases--
	c := tk.c
	if tk.phase == taskSending && !tk.done && tk.sent < tk.total && c.serving() {
		tk.sendDataIn()
		return
	}
	if tk.releases == 0 && (tk.done || !c.serving()) && tk.phase == taskSending {
		tk.free()
	}
	if tk.releases == 0 && tk.abandon && tk.phase == taskReceiving {
		tk.free()
	}
}

// finishAbandoned ends a task that will send nothing more: aborted, or its connection
// is going away. Its slot is freed once nothing it queued is left in the send queue.
func (tk *task) finishAbandoned() {
	if tk.phase == taskFree {
		return
	}
	if tk.stalled {
		tk.c.pg.unstall(tk)
	}
	for i := range tk.r2t {
		if r := &tk.r2t[i]; r.ttt != 0 {
			tk.releaseAwaited(r.end - r.begin)
			*r = sequence{}
		}
	}
	tk.r2tOpen = 0
	tk.unsol.open = false
	tk.abandon = true
	tk.answerWindow()
	if w := tk.tmfWaiting; w != nil {
		tk.tmfWaiting = nil
		w.taskEnded()
	}
	tk.phase = taskReceiving // no longer in the SCSI layer
	if tk.releases == 0 {
		tk.free()
	}
	if c := tk.c; c.logout != nil {
		c.maybeAnswerLogout()
	}
}

// free returns the slot and its buffer.
func (tk *task) free() {
	c := tk.c
	if tk.phase == taskFree {
		return
	}
	if tk.awaited > 0 {
		tk.releaseAwaited(tk.awaited)
	}
	if !tk.buf.IsZero() {
		c.pg.mem.Free(tk.buf)
		tk.buf = mem.Buf{}
	}
	if w := tk.tmfWaiting; w != nil {
		tk.tmfWaiting = nil
		w.taskEnded()
	}
	tk.phase = taskFree
	tk.st.Data = nil
	c.free = append(c.free, tk.idx)
	if c.state == connDraining {
		c.maybeFinishClose()
	}
}

// unstall removes a task from the stalled list.
func (pg *pollGroup) unstall(tk *task) {
	tk.stalled = false
	for i, x := range pg.stalled {
		if x == tk {
			pg.stalled = append(pg.stalled[:i], pg.stalled[i+1:]...)
			return
		}
	}
}

// checkDataTimeout ends a connection whose initiator does not send data it was asked
// for within the data timeout.
func (c *conn) checkDataTimeout(now int64) {
	limit := c.pg.t.limits.DataTimeoutNs()
	for i := range c.tasks {
		tk := &c.tasks[i]
		if tk.phase != taskReceiving {
			continue
		}
		waiting := tk.unsol.open && now-tk.unsol.progress > limit
		for j := range tk.r2t {
			if r := &tk.r2t[j]; r.open && now-r.progress > limit {
				waiting = true
			}
		}
		if waiting {
			c.pg.t.limits.CountDataTimeout()
			if c.pg.t.limits.Warn() {
				c.pg.t.log.Warn("iscsi: initiator did not send the data it was asked for; closing its connection",
					"peer", c.peer.String(), "itt", tk.itt, "waited_ms", limit/1e6)
			}
			c.beginClose("Data-Out timeout")
			return
		}
	}
}
