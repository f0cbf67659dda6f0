package host

import (
	"math"
	"net"
	"time"

	"sluice/engine/proto/nvme"
)

// slotState is where a command slot is in its life.
type slotState uint8

const (
	slotFree     slotState = iota
	slotInflight           // submitted: PDUs naming its CID are accepted
	slotDone               // completed: cqe is valid until the owner releases the slot
)

// slot is one command. Its index is the tag; the CID sent is the index plus a 4-bit
// generation in bits 15:12, so a completion for an earlier use of the slot is caught
// as an unknown CID instead of completing the wrong command.
type slot struct {
	state     slotState
	gen       uint8
	dir       nvme.Direction
	icd       bool // data went in the capsule
	last      bool // C2H: LAST_PDU seen
	aer       bool // an Asynchronous Event Request (admin queue)
	abandoned bool // the waiter gave up (admin queue): release on completion
	xfer      uint32
	buf       []byte
	start     time.Time
	done      chan struct{} // admin queue: closed on completion
	cqe       nvme.CQE
	// hdr is the CapsuleCmd header with its SQE and HDGST. It stays untouched from
	// submit until the flush that sends it.
	hdr   [nvme.CapsuleCmdHLen + nvme.DigestLen]byte
	ddgst [nvme.DigestLen]byte
}

// queue is the transport state of one queue pair: command slots, capsule framing, and
// the handling of every PDU the controller sends. It has no lock and no goroutine; the
// admin queue wraps it in a mutex and a reader goroutine, an IOQueue is driven by its
// caller.
type queue struct {
	c     *pduConn
	qid   uint16
	slots []slot

	inflight int
	maxICD   int  // largest in-capsule data
	sqFlow   bool // SQ flow control on: CQE SQHD is meaningful, C2H SUCCESS is not allowed
	anySQID  bool // Options.AcceptAnySQID
	sqHead   uint16
	sqPend   int // commands submitted whose SQ entry the controller has not reported consumed

	iov     net.Buffers // capsules waiting for flush, backed by iovBack
	iovBack [][]byte
	wv      net.Buffers // the header writev consumes (a field, so &wv does not escape)
	outBack [][]byte    // flush's coalesced iovecs
	stage   []byte      // small buffers copied together so that a batch is one iovec

	h2c      [nvme.DataHLen + nvme.DigestLen]byte
	h2cDg    [nvme.DigestLen]byte
	wiovBack [3][]byte

	err error // first fatal error; the queue is dead once set
}

func newQueue(c *pduConn, qid uint16, size, maxICD int, sqFlow bool) *queue {
	q := &queue{c: c, qid: qid, slots: make([]slot, size), maxICD: maxICD, sqFlow: sqFlow}
	q.iovBack = make([][]byte, 0, 3*size)
	q.iov = q.iovBack[:0]
	q.outBack = make([][]byte, 0, 3*size)
	q.stage = make([]byte, 0, size*(nvme.CapsuleCmdHLen+nvme.DigestLen+coalesceMax))
	return q
}

// coalesceMax is the largest buffer flush copies into its staging area: capsule
// headers and small in-capsule data. A batch of reads then goes to the kernel as one
// iovec instead of one per command, which costs the kernel less per writev; large
// data stays where it is.
const coalesceMax = 256

// sqe returns slot idx's SQE, zeroed, to be filled before submit.
func (q *queue) sqe(idx int) *nvme.SQE {
	s := nvme.CapsuleSQE(q.slots[idx].hdr[:])
	*s = nvme.SQE{}
	return s
}

// freeSlot returns a free slot index, or -1.
func (q *queue) freeSlot() int {
	for i := range q.slots {
		if q.slots[i].state == slotFree {
			return i
		}
	}
	return -1
}

// submit frames slot idx's SQE (filled through sqe) as a CapsuleCmd and queues it for
// flush. data is the command's data buffer: the source of a host-to-controller transfer,
// the destination of a controller-to-host one. The direction comes from the opcode
// bits 1:0, or from FCTYPE for a Fabrics command (Base §3.2).
//
// SGL1 is what the Linux host sends (TCP §2.4): in-capsule data as a Data Block with
// subtype Offset at offset 0 when a write fits maxICD; otherwise a Transport Data Block
// (5Ah) of the data length, or of length 0 for a command without data. PSDT is 01b
// (SGLs), which fabrics require.
//
// Preconditions: slot idx is free.
func (q *queue) submit(idx int, data []byte) error {
	s := &q.slots[idx]
	sqe := nvme.CapsuleSQE(s.hdr[:])
	op := sqe.Opcode()
	dir := nvme.DataDirection(op)
	if op == nvme.OpcodeFabrics {
		dir = nvme.DataDirection(uint8(sqe.FCTYPE()))
	}
	if uint64(len(data)) > math.MaxUint32 {
		return ErrBadLength
	}
	n := uint32(len(data))
	icd := false
	switch {
	case n == 0:
		dir = nvme.DirNone
		sqe.SetSGL1(nvme.SGLDescriptor{ID: nvme.SGLIDTransport})
	case dir == nvme.DirHostToCtrl && int(n) <= q.maxICD:
		icd = true
		sqe.SetSGL1(nvme.SGLDescriptor{Address: 0, Length: n, ID: nvme.SGLIDInCapsule})
	case dir == nvme.DirHostToCtrl || dir == nvme.DirCtrlToHost:
		sqe.SetSGL1(nvme.SGLDescriptor{Length: n, ID: nvme.SGLIDTransport})
	default:
		return ErrUnsupported
	}
	s.gen = (s.gen + 1) & genMask
	sqe.SetCID(uint16(idx) | uint16(s.gen)<<slotBits)
	sqe.SetPSDT(nvme.PSDTSGLMPTR)

	var icdLen uint32
	if icd {
		icdLen = n
	}
	ch := nvme.FrameHeader(nvme.PDUTypeCapsuleCmd, 0, icdLen, q.c.send)
	ch.Put(s.hdr[:])
	end := nvme.CapsuleCmdHLen
	if q.c.send.HDGST {
		nvme.SetHeaderDigest(s.hdr[:], end)
		end += nvme.DigestLen
	}
	// CPDA is 0 (handshake refuses anything else), so in-capsule data follows the
	// header with no padding: PDO == end.
	q.iov = append(q.iov, s.hdr[:end])
	if icd {
		q.iov = append(q.iov, data)
		if q.c.send.DDGST {
			nvme.PutDigest(s.ddgst[:], nvme.CRC32C(data))
			q.iov = append(q.iov, s.ddgst[:])
		}
	}

	s.state = slotInflight
	s.dir = dir
	s.icd = icd
	s.last = false
	s.buf = data
	s.xfer = 0
	if icd {
		s.xfer = n
	}
	q.inflight++
	q.sqPend++
	return nil
}

// flush sends every queued capsule with one writev.
func (q *queue) flush() error {
	if q.err != nil {
		return q.err
	}
	if len(q.iov) == 0 {
		return nil
	}
	q.wv = q.coalesce()
	err := q.c.writev(&q.wv)
	clear(q.iovBack[:len(q.iov)]) // drop references to caller buffers
	clear(q.outBack[:cap(q.outBack)])
	q.iov = q.iovBack[:0]
	if err != nil {
		return q.fail(err)
	}
	return nil
}

// coalesce merges runs of small buffers of q.iov into the staging area.
func (q *queue) coalesce() net.Buffers {
	out := q.outBack[:0]
	st := q.stage[:0]
	merging := false // the last entry of out is the staged run that ends at len(st)
	for _, b := range q.iov {
		if len(b) > coalesceMax || len(st)+len(b) > cap(st) {
			out = append(out, b)
			merging = false
			continue
		}
		start := len(st)
		st = append(st, b...)
		if merging {
			last := out[len(out)-1]
			out[len(out)-1] = st[len(st)-len(last)-len(b):]
		} else {
			out = append(out, st[start:])
			merging = true
		}
	}
	return out
}

// release frees a completed slot.
func (q *queue) release(idx int) {
	s := &q.slots[idx]
	s.state = slotFree
	s.buf = nil
	s.done = nil
	s.aer = false
	s.abandoned = false
}

// fail records the first fatal error and closes the connection.
func (q *queue) fail(err error) error {
	if q.err == nil {
		q.err = err
	}
	q.c.close()
	return err
}

// step reads and handles one PDU. It returns the index of the slot that completed, or
// -1.
func (q *queue) step() (int, error) {
	if q.err != nil {
		return -1, q.err
	}
	l, err := q.c.readHeader()
	if err != nil {
		return -1, q.fail(err)
	}
	idx, err := q.process(l)
	if err != nil {
		return -1, q.fail(err)
	}
	return idx, nil
}

// process handles a PDU whose header readHeader has just read and checked.
func (q *queue) process(l nvme.Layout) (int, error) {
	switch l.Type {
	case nvme.PDUTypeCapsuleResp:
		return q.capsuleResp()
	case nvme.PDUTypeC2HData:
		return q.c2hData(l)
	case nvme.PDUTypeR2T:
		return -1, q.r2t()
	}
	// ICResp again: the connection is already initialised (TCP §3.6.2.3).
	return -1, q.c.violation(protoErr(l.Type, nvme.FESPDUSequenceError, 0, "unexpected "+l.Type.String()))
}

// lookup finds the in-flight slot a CID names.
func (q *queue) lookup(cid uint16) (int, bool) {
	idx := int(cid & slotMask)
	if idx >= len(q.slots) {
		return -1, false
	}
	s := &q.slots[idx]
	if s.state != slotInflight || uint16(s.gen) != cid>>slotBits {
		return -1, false
	}
	return idx, true
}

// Field offsets in the PDUs the host checks (FEI values, TCP §3.6.2.4).
const (
	feiFlags     = 1
	feiPDO       = 3
	feiCCCID     = 8  // C2HData, R2T: CCCID @8
	feiDATAO     = 12 // C2HData DATAO @12, R2T R2TO @12
	feiDATAL     = 16 // C2HData DATAL @16, R2T R2TL @16
	feiCQESQHD   = nvme.CHLen + 8
	feiCQESQID   = nvme.CHLen + 10
	feiCQECID    = nvme.CHLen + 12
	feiCQEStatus = nvme.CHLen + 14
)

// capsuleResp completes a command from a CapsuleResp (TCP §3.6.2.7).
func (q *queue) capsuleResp() (int, error) {
	const t = nvme.PDUTypeCapsuleResp
	cqe := nvme.CapsuleCQE(q.c.hdr[:])
	idx, ok := q.lookup(cqe.CID())
	if !ok {
		return -1, q.c.violation(protoErr(t, nvme.FESInvalidHeaderField, feiCQECID,
			"CapsuleResp for a CID that is not outstanding"))
	}
	if cqe.SQID() != q.qid && !q.anySQID {
		return -1, q.c.violation(protoErr(t, nvme.FESInvalidHeaderField, feiCQESQID,
			"CapsuleResp SQID is not this queue's"))
	}
	if q.sqFlow {
		if err := q.advanceHead(cqe.SQHD()); err != nil {
			return -1, err
		}
	}
	s := &q.slots[idx]
	ok = cqe.Status().Success()
	switch {
	case s.dir == nvme.DirCtrlToHost && s.xfer > 0 && !s.last:
		return -1, q.c.violation(protoErr(t, nvme.FESPDUSequenceError, 0,
			"CapsuleResp before the C2HData PDU with LAST_PDU"))
	case s.dir == nvme.DirCtrlToHost && ok && !s.last:
		return -1, q.c.violation(protoErr(t, nvme.FESPDUSequenceError, 0,
			"successful completion of a read without its data"))
	case s.dir == nvme.DirHostToCtrl && ok && s.xfer != uint32(len(s.buf)):
		return -1, q.c.violation(protoErr(t, nvme.FESPDUSequenceError, 0,
			"successful completion of a write before all its data was requested by R2T"))
	}
	s.cqe = *cqe
	return q.complete(idx), nil
}

// advanceHead checks a CQE's SQHD while SQ flow control is on: a valid head, moving
// forward over entries this host submitted, never past them (Base §4.6, Fabrics
// §2.4.1). Whether the controller counts the Connect command itself differs between
// implementations; the check allows either.
func (q *queue) advanceHead(sqhd uint16) error {
	n := len(q.slots)
	if int(sqhd) >= n {
		return q.c.violation(protoErr(nvme.PDUTypeCapsuleResp, nvme.FESInvalidHeaderField, feiCQESQHD,
			"SQHD beyond the submission queue"))
	}
	adv := (int(sqhd) - int(q.sqHead) + n) % n
	if adv > q.sqPend {
		return q.c.violation(protoErr(nvme.PDUTypeCapsuleResp, nvme.FESInvalidHeaderField, feiCQESQHD,
			"SQHD moved past entries the host submitted"))
	}
	q.sqPend -= adv
	q.sqHead = sqhd
	return nil
}

func (q *queue) complete(idx int) int {
	q.slots[idx].state = slotDone
	q.inflight--
	return idx
}

// c2hData places a C2HData PDU's data in its command's buffer (TCP §3.6.2.9).
func (q *queue) c2hData(l nvme.Layout) (int, error) {
	const t = nvme.PDUTypeC2HData
	d, _ := nvme.DecodeC2HData(q.c.hdr[:])
	if err := l.CheckDATAL(d.DATAL); err != nil {
		return -1, q.c.violation(pduErr(t, err))
	}
	idx, ok := q.lookup(d.CCCID)
	if !ok {
		return -1, q.c.violation(protoErr(t, nvme.FESInvalidHeaderField, feiCCCID,
			"C2HData for a CID that is not outstanding"))
	}
	s := &q.slots[idx]
	switch {
	case s.dir != nvme.DirCtrlToHost:
		return -1, q.c.violation(protoErr(t, nvme.FESPDUSequenceError, 0,
			"C2HData for a command without controller-to-host data"))
	case s.last:
		return -1, q.c.violation(protoErr(t, nvme.FESPDUSequenceError, 0, "C2HData after LAST_PDU"))
	case l.Pad != 0:
		// HPDA is 0: data starts right after the header (and HDGST). The Linux host
		// reads it there whatever PDO says, so padding would corrupt its reads.
		return -1, q.c.violation(protoErr(t, nvme.FESInvalidHeaderField, feiPDO,
			"C2HData padded although HPDA is 0"))
	case d.DATAO != s.xfer:
		return -1, q.c.violation(protoErr(t, nvme.FESDataOutOfRange, feiDATAO,
			"C2HData DATAO is not where the previous PDU ended"))
	case uint64(d.DATAO)+uint64(d.DATAL) > uint64(len(s.buf)):
		return -1, q.c.violation(protoErr(t, nvme.FESDataOutOfRange, feiDATAL,
			"C2HData beyond the command's data length"))
	}
	if err := q.c.readData(s.buf[d.DATAO:d.DATAO+d.DATAL], l); err != nil {
		return -1, err
	}
	s.xfer += d.DATAL
	flags := q.c.hdr[1]
	if flags&nvme.CHFlagLastPDU == 0 {
		return -1, nil
	}
	s.last = true
	if s.xfer != uint32(len(s.buf)) {
		return -1, q.c.violation(protoErr(t, nvme.FESPDUSequenceError, 0,
			"LAST_PDU before all of the command's data"))
	}
	if flags&nvme.CHFlagSuccess == 0 {
		return -1, nil
	}
	if q.sqFlow {
		return -1, q.c.violation(protoErr(t, nvme.FESInvalidHeaderField, feiFlags,
			"C2HData SUCCESS while SQ flow control is on"))
	}
	// SUCCESS: the command completed with a zero CQE and no CapsuleResp follows.
	s.cqe.Reset()
	s.cqe.SetCID(d.CCCID)
	s.cqe.SetSQID(q.qid)
	return q.complete(idx), nil
}

// r2t answers an R2T with H2CData PDUs of at most MAXH2CDATA bytes each, inside the R2T
// window, LAST_PDU on the last (TCP §3.6.2.8, §3.6.2.10). The host sent MAXR2T 0, so
// R2Ts for a command come one after the other, each starting where the previous ended
// (the Linux host refuses any other offset).
func (q *queue) r2t() error {
	const t = nvme.PDUTypeR2T
	r, _ := nvme.DecodeR2T(q.c.hdr[:])
	idx, ok := q.lookup(r.CCCID)
	if !ok {
		return q.c.violation(protoErr(t, nvme.FESInvalidHeaderField, feiCCCID,
			"R2T for a CID that is not outstanding"))
	}
	s := &q.slots[idx]
	switch {
	case s.dir != nvme.DirHostToCtrl || s.icd:
		return q.c.violation(protoErr(t, nvme.FESPDUSequenceError, 0,
			"R2T for a command without data to solicit"))
	case r.R2TL == 0:
		return q.c.violation(protoErr(t, nvme.FESInvalidHeaderField, feiDATAL, "R2TL is 0"))
	case r.R2TO != s.xfer:
		return q.c.violation(protoErr(t, nvme.FESDataOutOfRange, feiDATAO,
			"R2TO is not where the previous R2T ended"))
	case uint64(r.R2TO)+uint64(r.R2TL) > uint64(len(s.buf)):
		return q.c.violation(protoErr(t, nvme.FESDataOutOfRange, feiDATAL,
			"R2T beyond the command's data length"))
	}
	end := r.R2TO + r.R2TL
	for off := r.R2TO; off < end; {
		n := min(end-off, q.c.maxH2C)
		var flags uint8
		if off+n == end {
			flags = nvme.CHFlagLastPDU
		}
		nvme.FrameHeader(nvme.PDUTypeH2CData, flags, n, q.c.send).Put(q.h2c[:])
		h := nvme.H2CData{CCCID: r.CCCID, TTAG: r.TTAG, DATAO: off, DATAL: n}
		h.Put(q.h2c[:])
		hl := nvme.DataHLen
		if q.c.send.HDGST {
			nvme.SetHeaderDigest(q.h2c[:], hl)
			hl += nvme.DigestLen
		}
		data := s.buf[off : off+n]
		q.wv = append(q.wiovBack[:0], q.h2c[:hl], data)
		if q.c.send.DDGST {
			nvme.PutDigest(q.h2cDg[:], nvme.CRC32C(data))
			q.wv = append(q.wv, q.h2cDg[:])
		}
		if err := q.c.writev(&q.wv); err != nil {
			return err
		}
		off += n
	}
	clear(q.wiovBack[:])
	s.xfer = end
	return nil
}
