package initiator

import (
	"strconv"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// Field offsets in the BHS that the checks name (RFC 7143 §11).
const (
	offFlags     = 1
	offStatus    = 3
	offDSL       = 5
	offLUN       = 8
	offITT       = 16
	offTTT       = 20
	offStatSN    = 24
	offExpCmdSN  = 28
	offMaxCmdSN  = 32
	offDataSN    = 36
	offBufOffset = 40
	offResidual  = 44
)

// dispatch handles the PDU whose header readHeader has just read and checked.
func (s *Session) dispatch() error {
	s.stats.PDUs++
	switch op := s.rhdr.Opcode(); op {
	case proto.OpDataIn:
		return s.dataIn()
	case proto.OpSCSIResponse:
		return s.scsiResponse()
	case proto.OpR2T:
		return s.r2t()
	case proto.OpNOPIn:
		return s.nopIn()
	case proto.OpTMFResponse:
		return s.tmfResponse()
	case proto.OpTextResponse:
		return s.textResponse()
	case proto.OpLogoutResponse:
		return s.logoutResponse()
	case proto.OpReject:
		return s.rejectPDU()
	case proto.OpAsyncMessage:
		return s.asyncMessage()
	}
	return s.bad(0, "unexpected PDU in full feature phase")
}

// lookup finds the command in flight that an ITT names.
func (s *Session) lookup(itt uint32) (*slot, int, bool) {
	idx := int(itt & 0xffff)
	if itt&0x80000000 != 0 || idx >= len(s.slots) {
		return nil, -1, false
	}
	sl := &s.slots[idx]
	if sl.state != slotInflight || uint32(sl.gen) != itt>>16 {
		return nil, -1, false
	}
	return sl, idx, true
}

// statSN checks the StatSN of a PDU that carries status: the next one expected, after
// which it advances (RFC 7143 §4.2.2.2).
func (s *Session) statSN(sn uint32) error {
	if sn != s.expStatSN {
		return s.bad(offStatSN, "StatSN "+strconv.FormatUint(uint64(sn), 10)+", expected "+
			strconv.FormatUint(uint64(s.expStatSN), 10))
	}
	s.expStatSN++
	return nil
}

// peekStatSN checks the StatSN of a PDU that reports the next StatSN without taking it
// (R2T, target NOP-In pings).
func (s *Session) peekStatSN(sn uint32) error {
	if sn != s.expStatSN {
		return s.bad(offStatSN, "StatSN "+strconv.FormatUint(uint64(sn), 10)+" is not the next StatSN "+
			strconv.FormatUint(uint64(s.expStatSN), 10))
	}
	return nil
}

// window takes ExpCmdSN and MaxCmdSN from a target PDU (RFC 7143 §4.2.2.1). On one
// connection they never move back: ExpCmdSN stays within the commands sent, MaxCmdSN
// at or above ExpCmdSN - 1 and never below a CmdSN already sent in its window. A lower
// MaxCmdSN than before is otherwise ignored, as the RFC says.
func (s *Session) window() error {
	exp := be32(s.rhdr[offExpCmdSN:])
	mx := be32(s.rhdr[offMaxCmdSN:])
	switch {
	case proto.SNLess(mx, exp-1):
		return s.bad(offMaxCmdSN, "MaxCmdSN below ExpCmdSN - 1")
	case proto.SNLess(exp, s.expCmdSN):
		return s.bad(offExpCmdSN, "ExpCmdSN moved back")
	case proto.SNLess(s.cmdSN, exp):
		return s.bad(offExpCmdSN, "ExpCmdSN beyond the commands sent")
	case proto.SNLess(mx, s.cmdSN-1):
		return s.bad(offMaxCmdSN, "MaxCmdSN below a CmdSN already sent in the window")
	}
	s.expCmdSN = exp
	if proto.SNLess(s.maxCmdSN, mx) {
		s.maxCmdSN = mx
	}
	return nil
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// dataIn places a Data-In PDU's data in its command's buffer (RFC 7143 §11.7), and
// completes the command when it carries the status (phase collapse).
func (s *Session) dataIn() error {
	d, _ := proto.DecodeDataIn(&s.rhdr)
	sl, idx, ok := s.lookup(d.ITT)
	n := d.DataSegmentLength
	switch {
	case !ok:
		return s.bad(offITT, "Data-In for a task not outstanding")
	case !sl.read:
		return s.bad(offITT, "Data-In for a command without read data")
	case d.Ack:
		return s.bad(offFlags, "Data-In asks for a DataACK at ErrorRecoveryLevel 0")
	case d.HasStatus && !d.Final:
		return s.bad(offFlags, "Data-In with S but not F")
	case !d.HasStatus && (d.Overflow || d.Underflow):
		return s.bad(offFlags, "Data-In residual bits without S")
	case d.DataSN != sl.dataSN:
		return s.bad(offDataSN, "Data-In DataSN out of sequence")
	case d.BufferOffset != sl.got:
		return s.bad(offBufOffset, "Data-In BufferOffset is not where the previous PDU ended")
	case uint64(d.BufferOffset)+uint64(n) > uint64(len(sl.buf)):
		return s.bad(offDSL, "Data-In beyond the Expected Data Transfer Length")
	case n == 0 && !d.HasStatus:
		return s.bad(offDSL, "empty Data-In without status")
	case sl.seqBytes+n > s.params.MaxBurstLength:
		return s.bad(offFlags, "Data-In sequence longer than MaxBurstLength without F")
	}
	if err := s.readData(sl.buf[d.BufferOffset : d.BufferOffset+n]); err != nil {
		return err
	}
	s.stats.DataIn++
	sl.got += n
	sl.dataSN++
	sl.seqBytes += n
	sl.seqOpen = !d.Final
	if d.Final {
		sl.seqBytes = 0
	}
	sl.res.DataIn, sl.res.DataInPDUs = sl.got, int(sl.dataSN)
	if !d.HasStatus {
		return s.window()
	}
	if err := s.statSN(d.StatSN); err != nil {
		return err
	}
	if err := s.window(); err != nil {
		return err
	}
	if pscsi.Status(d.Status) == pscsi.StatusCheckCondition {
		return s.bad(offStatus, "CHECK CONDITION in a Data-In: its sense data has no place there")
	}
	r := &sl.res
	r.Response, r.Status, r.Collapsed, r.answered = proto.ResponseCompleted, pscsi.Status(d.Status), true, true
	r.Overflow, r.Underflow, r.Residual = d.Overflow, d.Underflow, d.ResidualCount
	if err := s.checkResidual(sl); err != nil {
		return err
	}
	s.complete(sl, idx, nil)
	return nil
}

// checkResidual checks a command's residual flags and count against the data that
// moved (RFC 7143 §11.4.5): O and U never together, a count with either; and for a
// GOOD status, a read delivered exactly EDTL less an underflow, a write was asked for
// at least that much.
func (s *Session) checkResidual(sl *slot) error {
	r := &sl.res
	switch {
	case r.Overflow && r.Underflow:
		return s.bad(offFlags, "both residual overflow and underflow")
	case (r.Overflow || r.Underflow) && r.Residual == 0:
		return s.bad(offResidual, "residual flag with a count of 0")
	case r.Underflow && r.Residual > sl.edtl:
		return s.bad(offResidual, "residual underflow larger than the Expected Data Transfer Length")
	case !r.Good():
		return nil
	}
	want := sl.edtl
	if r.Underflow {
		want -= r.Residual
	}
	switch {
	case sl.read && sl.got != want:
		return s.bad(offResidual, "GOOD read delivered "+strconv.FormatUint(uint64(sl.got), 10)+
			" bytes; its residual says "+strconv.FormatUint(uint64(want), 10))
	case sl.write && sl.solicited < want:
		return s.bad(offResidual, "GOOD write before all its data was asked for")
	}
	return nil
}

// scsiResponse completes a command from its SCSI Response (RFC 7143 §11.4).
func (s *Session) scsiResponse() error {
	r, _ := proto.DecodeSCSIResponse(&s.rhdr)
	sl, idx, ok := s.lookup(r.ITT)
	switch {
	case s.rhdr[offFlags]&0x80 == 0:
		return s.bad(offFlags, "SCSI Response with byte 1 bit 7 clear")
	case !ok:
		return s.bad(offITT, "SCSI Response for a task not outstanding")
	case r.BidiOverflow || r.BidiUnderflow:
		return s.bad(offFlags, "bidirectional residual on a unidirectional command")
	case r.SNACKTag != 0:
		return s.bad(offTTT, "SNACK Tag without an R-Data SNACK")
	case sl.seqOpen:
		return s.bad(offFlags, "SCSI Response while a Data-In sequence is open (no F)")
	case r.Response != proto.ResponseCompleted && r.ExpDataSN != 0:
		return s.bad(offDataSN, "ExpDataSN of a command not completed at the target")
	case sl.read && r.Response == proto.ResponseCompleted && r.ExpDataSN != sl.dataSN:
		return s.bad(offDataSN, "ExpDataSN is not the number of Data-In PDUs sent")
	case sl.write && r.ExpDataSN != 0 && r.ExpDataSN != sl.r2tSN:
		return s.bad(offDataSN, "ExpDataSN of a write is neither 0 nor its R2T count")
	}
	data, err := s.readCtlData()
	if err != nil {
		return err
	}
	if err := s.statSN(r.StatSN); err != nil {
		return err
	}
	if err := s.window(); err != nil {
		return err
	}
	res := &sl.res
	res.Response, res.Status, res.answered = r.Response, pscsi.Status(r.Status), true
	res.Overflow, res.Underflow, res.Residual = r.Overflow, r.Underflow, r.ResidualCount
	if err := s.takeSense(res, data); err != nil {
		return err
	}
	if err := s.checkResidual(sl); err != nil {
		return err
	}
	s.complete(sl, idx, nil)
	return nil
}

// takeSense keeps a SCSI Response's sense data (RFC 7143 §11.4.7): autosense is
// mandatory, so a CHECK CONDITION must carry decodable sense.
func (s *Session) takeSense(res *Result, data []byte) error {
	sense, _, err := proto.SplitSenseData(data)
	if err != nil {
		return &ProtocolError{Opcode: proto.OpSCSIResponse, Offset: proto.BHSLen, ITT: s.rhdr.ITT(),
			Reason: "malformed sense data", Err: err}
	}
	res.SenseLen = len(sense)
	copy(res.sense[:], sense)
	check := res.Response == proto.ResponseCompleted && res.Status == pscsi.StatusCheckCondition
	if len(sense) == 0 {
		if check {
			return s.bad(offDSL, "CHECK CONDITION without sense data")
		}
		return nil
	}
	d, err := pscsi.DecodeSense(sense)
	if err != nil && check {
		return &ProtocolError{Opcode: proto.OpSCSIResponse, Offset: proto.BHSLen, ITT: s.rhdr.ITT(),
			Reason: "undecodable sense data", Err: err}
	}
	res.Sense = d
	return nil
}

// r2t answers an R2T at once with the Data-Out PDUs it asks for (RFC 7143 §11.8):
// DataSN from 0, F on the last, each at most the target's MaxRecvDataSegmentLength.
// R2Ts must come in order (DataSequenceInOrder=Yes), each starting where the data sent
// or solicited so far ends, and never beyond the Expected Data Transfer Length.
func (s *Session) r2t() error {
	r, _ := proto.DecodeR2T(&s.rhdr)
	sl, _, ok := s.lookup(r.ITT)
	end := uint64(r.BufferOffset) + uint64(r.DesiredDataTransferLength)
	switch {
	case s.rhdr[offFlags]&0x80 == 0:
		return s.bad(offFlags, "R2T with byte 1 bit 7 clear")
	case s.lay.DataLen != 0:
		return s.bad(offDSL, "R2T with a data segment")
	case !ok:
		return s.bad(offITT, "R2T for a task not outstanding")
	case !sl.write:
		return s.bad(offITT, "R2T for a command without write data")
	case r.LUN != sl.cmd.LUN:
		return s.bad(offLUN, "R2T LUN is not the command's")
	case r.TTT == proto.ReservedTag:
		return s.bad(offTTT, "R2T with the reserved Target Transfer Tag")
	case r.R2TSN != sl.r2tSN:
		return s.bad(offDataSN, "R2TSN out of sequence")
	case r.DesiredDataTransferLength == 0:
		return s.bad(offResidual, "R2T for 0 bytes")
	case r.DesiredDataTransferLength > s.params.MaxBurstLength:
		return s.bad(offResidual, "R2T for more than MaxBurstLength")
	case r.BufferOffset != sl.solicited:
		return s.bad(offBufOffset, "R2T BufferOffset is not where the data sent so far ends")
	case end > uint64(sl.edtl):
		return s.bad(offResidual, "R2T beyond the Expected Data Transfer Length")
	}
	if err := s.peekStatSN(r.StatSN); err != nil {
		return err
	}
	if err := s.window(); err != nil {
		return err
	}
	sl.r2tSN++
	sl.solicited = uint32(end)
	sl.res.R2Ts++
	s.stats.R2Ts++
	return s.sendData(sl, r.TTT, r.BufferOffset, uint32(end))
}

// sendData writes [off, end) of a command's data as one solicited Data-Out sequence.
func (s *Session) sendData(sl *slot, ttt, off, end uint32) error {
	sn := uint32(0)
	for off < end {
		iov := s.txBack[:0]
		for k := 0; k < txMax && off < end; k++ {
			n := min(end-off, s.maxXmit)
			d := proto.DataOut{Final: off+n == end, DataSegmentLength: n, LUN: sl.cmd.LUN, ITT: sl.itt,
				TTT: ttt, ExpStatSN: s.expStatSN, DataSN: sn, BufferOffset: off}
			d.Put((*proto.BHS)(s.txHdrs[k][:proto.BHSLen]))
			iov = s.frame(iov, &s.txHdrs[k], sl.buf[off:off+n], &s.txDg[k])
			off += n
			sn++
		}
		s.wv = iov
		err := s.writev(&s.wv)
		clear(s.txBack[:cap(s.txBack)])
		if err != nil {
			return err
		}
	}
	return nil
}

// nopIn handles a NOP-In (RFC 7143 §11.19): the answer to the initiator's ping, a
// ping of the target's (answered at once), or a bare window update.
func (s *Session) nopIn() error {
	n, _ := proto.DecodeNOPIn(&s.rhdr)
	if s.rhdr[offFlags]&0x80 == 0 {
		return s.bad(offFlags, "NOP-In with byte 1 bit 7 clear")
	}
	data, err := s.readCtlData()
	if err != nil {
		return err
	}
	if n.ITT != proto.ReservedTag {
		return s.pingAnswer(&n, data)
	}
	if err := s.peekStatSN(n.StatSN); err != nil {
		return err
	}
	if err := s.window(); err != nil {
		return err
	}
	if n.TTT == proto.ReservedTag {
		return nil // an update of the window, or a keep-alive wanting no answer
	}
	s.stats.TargetPings++
	out := proto.NOPOut{Immediate: true, DataSegmentLength: uint32(len(data)), LUN: n.LUN,
		ITT: proto.ReservedTag, TTT: n.TTT, CmdSN: s.cmdSN, ExpStatSN: s.expStatSN}
	if uint32(len(data)) > s.maxXmit {
		out.DataSegmentLength, data = 0, nil
	}
	out.Put((*proto.BHS)(s.txHdrs[0][:proto.BHSLen]))
	return s.sendNow(data)
}

// asyncMessage takes an Asynchronous Message (RFC 7143 §11.9). The session keeps the
// last one; a target that announces dropping the connection then closes it, which
// ends the session.
func (s *Session) asyncMessage() error {
	m, _ := proto.DecodeAsyncMessage(&s.rhdr)
	if s.rhdr.ITT() != proto.ReservedTag {
		return s.bad(offITT, "Asynchronous Message ITT is not 0xffffffff")
	}
	data, err := s.readCtlData()
	if err != nil {
		return err
	}
	if m.Event == proto.AsyncSCSIEvent {
		if _, _, err := proto.SplitSenseData(data); err != nil || len(data) == 0 {
			return s.bad(offDSL, "SCSI asynchronous event without sense data")
		}
	}
	if err := s.statSN(m.StatSN); err != nil {
		return err
	}
	if err := s.window(); err != nil {
		return err
	}
	s.stats.AsyncEvents++
	s.lastAsync = m
	return nil
}

// rejectPDU takes a Reject (RFC 7143 §11.17): the command or request it names ends
// with a *RejectError.
func (s *Session) rejectPDU() error {
	r, _ := proto.DecodeReject(&s.rhdr)
	if s.rhdr.ITT() != proto.ReservedTag {
		return s.bad(offITT, "Reject ITT is not 0xffffffff")
	}
	data, err := s.readCtlData()
	if err != nil {
		return err
	}
	if len(data) < proto.BHSLen {
		return s.bad(offDSL, "Reject without the rejected PDU's header")
	}
	if err := s.statSN(r.StatSN); err != nil {
		return err
	}
	if err := s.window(); err != nil {
		return err
	}
	s.stats.Rejects++
	rh := (*proto.BHS)(data[:proto.BHSLen])
	re := &RejectError{Reason: r.Reason, Opcode: rh.Opcode()}
	itt := rh.ITT()
	if rh.Opcode() == proto.OpSCSICommand {
		if sl, idx, ok := s.lookup(itt); ok {
			s.complete(sl, idx, re)
		}
		return nil
	}
	if s.ctl.active && !s.ctl.done && itt == s.ctl.itt {
		s.ctl.done, s.ctl.err = true, re
	}
	return nil
}
