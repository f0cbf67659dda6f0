package initiator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// ctlReq is the control request in flight (one at a time: NOP-Out ping, task
// management, text, logout), sent immediate with a control ITT.
type ctlReq struct {
	active, done bool
	op           proto.Opcode
	itt          uint32
	err          error
	// ping: the data sent, which the NOP-In must echo.
	ping []byte
	// task management: what the function covers, and the answer.
	tmf     proto.TMFunction
	tmfLUN  proto.LUN
	tmfRef  uint32
	tmfResp proto.TMFResponseCode
	// text: the answer so far, and the TTT that continues it.
	text    []byte
	textTTT uint32
	final   bool
	// logout.
	logout proto.LogoutResponse
}

// control sends the request whose BHS is in s.txHdrs[0] (with data) and handles PDUs
// until its answer arrives; asynchronous commands completing meanwhile wait for Reap.
func (s *Session) control(ctx context.Context, data []byte) error {
	s.armed = time.Time{}
	defer bound(ctx, s.timeout, s.nc.SetDeadline)()
	if err := s.flush(); err != nil {
		return err
	}
	s.ctl.done, s.ctl.err = false, nil
	s.ctl.active = true
	defer func() { s.ctl.active = false }()
	if err := s.sendNow(data); err != nil {
		return s.fail(err)
	}
	for !s.ctl.done {
		if err := s.step(); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w (%w)", ctx.Err(), err)
			}
			return err
		}
	}
	return s.ctl.err
}

// ctlCheck checks that a control response answers the request in flight.
func (s *Session) ctlCheck(rsp proto.Opcode) error {
	itt := s.rhdr.ITT()
	if !s.ctl.active || s.ctl.done || itt != s.ctl.itt || s.ctl.op != rsp {
		return s.bad(offITT, s.rhdr.Opcode().String()+" for no request outstanding")
	}
	if s.rhdr[offFlags]&0x80 == 0 && rsp != proto.OpTextResponse {
		return s.bad(offFlags, s.rhdr.Opcode().String()+" with byte 1 bit 7 clear")
	}
	return nil
}

// Ping sends a NOP-Out with data and waits for the NOP-In that echoes it (RFC 7143
// §11.18): the echo must be the data, cut to what this initiator receives.
func (s *Session) Ping(ctx context.Context, data []byte) error {
	if s.err != nil {
		return s.err
	}
	if uint32(len(data)) > s.maxXmit {
		return ErrBadLength
	}
	itt := s.nextCtlITT()
	s.ctl = ctlReq{op: proto.OpNOPIn, itt: itt, ping: data}
	n := proto.NOPOut{Immediate: true, DataSegmentLength: uint32(len(data)), ITT: itt,
		TTT: proto.ReservedTag, CmdSN: s.cmdSN, ExpStatSN: s.expStatSN}
	n.Put((*proto.BHS)(s.txHdrs[0][:proto.BHSLen]))
	return s.control(ctx, data)
}

// pingAnswer takes the NOP-In that answers the initiator's ping.
func (s *Session) pingAnswer(n *proto.NOPIn, data []byte) error {
	if err := s.ctlCheck(proto.OpNOPIn); err != nil {
		return err
	}
	want := s.ctl.ping[:min(uint32(len(s.ctl.ping)), s.maxRecv)]
	switch {
	case n.TTT != proto.ReservedTag:
		return s.bad(offTTT, "NOP-In answering a ping with a Target Transfer Tag")
	case !bytes.Equal(data, want):
		return s.bad(offDSL, "NOP-In does not echo the ping data")
	}
	if err := s.statSN(n.StatSN); err != nil {
		return err
	}
	if err := s.window(); err != nil {
		return err
	}
	s.ctl.done = true
	return nil
}

// TMFRequest is a raw task management function for TaskManagement.
type TMFRequest struct {
	Function proto.TMFunction
	LUN      uint16
	// RefITT and RefCmdSN name the task for ABORT TASK.
	RefITT, RefCmdSN uint32
}

// TaskManagement sends a task management function (RFC 7143 §11.5) and returns the
// target's response code. When the function completes, the commands it covers that
// are still outstanding end with ErrAborted: the target sends no status for them, and
// any PDU for them after the response is a protocol violation (§11.5.1).
func (s *Session) TaskManagement(ctx context.Context, r TMFRequest) (proto.TMFResponseCode, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.discovery {
		return 0, ErrDiscovery
	}
	itt := s.nextCtlITT()
	s.ctl = ctlReq{op: proto.OpTMFResponse, itt: itt, tmf: r.Function, tmfLUN: lunField(r.LUN),
		tmfRef: r.RefITT}
	req := proto.TMFRequest{Immediate: true, Function: r.Function, LUN: lunField(r.LUN), ITT: itt,
		ReferencedTaskTag: proto.ReservedTag, CmdSN: s.cmdSN, ExpStatSN: s.expStatSN,
		RefCmdSN: r.RefCmdSN}
	if r.Function == proto.TMFAbortTask {
		req.ReferencedTaskTag = r.RefITT
	}
	req.Put((*proto.BHS)(s.txHdrs[0][:proto.BHSLen]))
	if err := s.control(ctx, nil); err != nil {
		return 0, err
	}
	return s.ctl.tmfResp, nil
}

// AbortTask aborts the command outstanding under tag (ABORT TASK). A command still
// waiting for the command window is taken back without asking the target.
func (s *Session) AbortTask(ctx context.Context, tag uint16) (proto.TMFResponseCode, error) {
	if int(tag) >= s.opts.QueueDepth {
		return 0, ErrTagRange
	}
	if err := s.flush(); err != nil {
		return 0, err
	}
	sl := &s.slots[tag]
	switch sl.state {
	case slotFree, slotDone:
		return 0, ErrNothingOutstanding
	case slotQueued:
		s.queue.remove(tag)
		sl.state, sl.err = slotDone, ErrAborted
		s.done.push(tag)
		return proto.TMFComplete, nil
	}
	lun, _ := lunNumber(sl.cmd.LUN)
	return s.TaskManagement(ctx, TMFRequest{Function: proto.TMFAbortTask, LUN: lun, RefITT: sl.itt,
		RefCmdSN: sl.cmdSN})
}

// LUNReset sends LOGICAL UNIT RESET for lun; anything but "function complete" is a
// *TMFError. Afterwards the LU reports a unit attention (29h/00h) to the next command.
func (s *Session) LUNReset(ctx context.Context, lun uint16) error {
	code, err := s.TaskManagement(ctx, TMFRequest{Function: proto.TMFLogicalUnitReset, LUN: lun})
	if err != nil {
		return err
	}
	if code != proto.TMFComplete {
		return &TMFError{Function: proto.TMFLogicalUnitReset, Response: code}
	}
	return nil
}

// tmfResponse takes a TMF Response (RFC 7143 §11.6) and ends the commands the
// function covered.
func (s *Session) tmfResponse() error {
	r, _ := proto.DecodeTMFResponse(&s.rhdr)
	if err := s.ctlCheck(proto.OpTMFResponse); err != nil {
		return err
	}
	if s.lay.DataLen != 0 {
		return s.bad(offDSL, "TMF Response with a data segment")
	}
	if err := s.statSN(r.StatSN); err != nil {
		return err
	}
	if err := s.window(); err != nil {
		return err
	}
	c := &s.ctl
	c.tmfResp, c.done = r.Response, true
	if r.Response != proto.TMFComplete && !(c.tmf == proto.TMFAbortTask && r.Response == proto.TMFTaskNotExist) {
		return nil
	}
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.state == slotInflight && s.covers(sl) {
			s.stats.AbortedTasks++
			s.complete(sl, i, ErrAborted)
		}
	}
	return nil
}

// covers reports whether the task management function in flight covers a command.
func (s *Session) covers(sl *slot) bool {
	c := &s.ctl
	switch c.tmf {
	case proto.TMFAbortTask:
		return sl.itt == c.tmfRef
	case proto.TMFAbortTaskSet, proto.TMFClearTaskSet, proto.TMFLogicalUnitReset:
		return sl.cmd.LUN == c.tmfLUN
	case proto.TMFTargetWarmReset, proto.TMFTargetColdReset:
		return true
	}
	return false
}

func lunNumber(l proto.LUN) (uint16, error) { return pscsi.DecodeLUN([pscsi.LUNLen]byte(l)) }

// TargetInfo is one target of a SendTargets answer (RFC 7143 Appendix C).
type TargetInfo struct {
	Name      string
	Addresses []TargetAddress
}

// TargetAddress is one TargetAddress value: host:port and the portal group tag.
type TargetAddress struct {
	Addr           string
	PortalGroupTag uint16
}

// SendTargets asks the target for the targets query names ("All", "" for the
// session's own, or a target name) with a Text Request, fetching the continuations of
// a long answer (RFC 7143 §11.10, §11.11).
func (s *Session) SendTargets(ctx context.Context, query string) ([]TargetInfo, error) {
	kv := proto.AppendKey(nil, "SendTargets", query)
	text, err := s.Text(ctx, kv)
	if err != nil {
		return nil, err
	}
	return parseSendTargets(text)
}

// Text runs one text negotiation: the key=value data goes in a Text Request (the
// caller keeps it within the target's MaxRecvDataSegmentLength), and the answer comes
// back whole, its continuations fetched.
func (s *Session) Text(ctx context.Context, kv []byte) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	if uint32(len(kv)) > s.maxXmit {
		return nil, ErrBadLength
	}
	itt := s.nextCtlITT()
	s.ctl = ctlReq{op: proto.OpTextResponse, itt: itt}
	ttt := proto.ReservedTag
	for round := 0; round < 1024; round++ {
		r := proto.TextRequest{Immediate: true, Final: true, DataSegmentLength: uint32(len(kv)), ITT: itt,
			TTT: ttt, CmdSN: s.cmdSN, ExpStatSN: s.expStatSN}
		r.Put((*proto.BHS)(s.txHdrs[0][:proto.BHSLen]))
		if err := s.control(ctx, kv); err != nil {
			return nil, err
		}
		if s.ctl.final {
			return s.ctl.text, nil
		}
		kv, ttt = nil, s.ctl.textTTT
	}
	return nil, s.fail(&ProtocolError{Opcode: proto.OpTextResponse, ITT: itt, Reason: "text answer never ends"})
}

// textResponse takes one Text Response: F and C never together, a TTT exactly when the
// answer continues.
func (s *Session) textResponse() error {
	r, _ := proto.DecodeTextResponse(&s.rhdr)
	if err := s.ctlCheck(proto.OpTextResponse); err != nil {
		return err
	}
	switch {
	case r.Final && r.Continue:
		return s.bad(offFlags, "Text Response with both F and C")
	case r.Final && r.TTT != proto.ReservedTag:
		return s.bad(offTTT, "final Text Response with a Target Transfer Tag")
	case !r.Final && r.TTT == proto.ReservedTag:
		return s.bad(offTTT, "Text Response continues without a Target Transfer Tag")
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
	c := &s.ctl
	if len(c.text)+len(data) > proto.DefaultMaxTextLen*16 {
		return s.bad(offDSL, "text answer longer than 1 MiB")
	}
	c.text = append(c.text, data...)
	c.final, c.textTTT, c.done = r.Final, r.TTT, true
	return nil
}

// parseSendTargets splits a SendTargets answer: TargetName=, each followed by its
// TargetAddress= values (keys repeat, so proto.ParseText does not apply).
func parseSendTargets(b []byte) ([]TargetInfo, error) {
	var out []TargetInfo
	for _, f := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		if len(f) == 0 {
			continue
		}
		k, v, ok := strings.Cut(string(f), "=")
		if !ok {
			return nil, &ProtocolError{Opcode: proto.OpTextResponse, Reason: "SendTargets pair without '='"}
		}
		switch k {
		case "TargetName":
			out = append(out, TargetInfo{Name: v})
		case "TargetAddress":
			if len(out) == 0 {
				return nil, &ProtocolError{Opcode: proto.OpTextResponse,
					Reason: "TargetAddress before any TargetName"}
			}
			a, err := parseTargetAddress(v)
			if err != nil {
				return nil, err
			}
			out[len(out)-1].Addresses = append(out[len(out)-1].Addresses, a)
		case "SendTargets":
			return nil, fmt.Errorf("%w: SendTargets=%s", ErrTextRejected, v)
		}
	}
	return out, nil
}

func parseTargetAddress(v string) (TargetAddress, error) {
	addr, tag, ok := strings.Cut(v, ",")
	n, err := strconv.ParseUint(tag, 10, 16)
	if !ok || err != nil || addr == "" {
		return TargetAddress{}, &ProtocolError{Opcode: proto.OpTextResponse,
			Reason: "TargetAddress " + strconv.Quote(v) + " is not <address>,<tpgt>"}
	}
	return TargetAddress{Addr: addr, PortalGroupTag: uint16(n)}, nil
}

// Logout closes the session (RFC 7143 §11.14): no command goes out after the request;
// the target answers what runs first, then the Logout Response, then closes the
// connection. Commands still outstanding at the response end with ErrLoggedOut. After
// a successful logout every call returns ErrClosed.
func (s *Session) Logout(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	if err := s.flush(); err != nil {
		return err
	}
	for s.queue.size > 0 { // the window never admitted them: they never go
		idx := s.queue.pop()
		sl := &s.slots[idx]
		sl.state, sl.err = slotDone, ErrLoggedOut
		if !sl.sync {
			s.done.push(idx)
		}
	}
	itt := s.nextCtlITT()
	s.ctl = ctlReq{op: proto.OpLogoutResponse, itt: itt}
	r := proto.LogoutRequest{Immediate: true, Reason: proto.LogoutCloseSession, ITT: itt, CID: s.params.CID,
		CmdSN: s.cmdSN, ExpStatSN: s.expStatSN}
	r.Put((*proto.BHS)(s.txHdrs[0][:proto.BHSLen]))
	if err := s.control(ctx, nil); err != nil {
		return err
	}
	if code := s.ctl.logout.Response; code != proto.LogoutSuccess {
		return &LogoutError{Response: code}
	}
	for i := range s.slots {
		if sl := &s.slots[i]; sl.state == slotInflight {
			s.complete(sl, i, ErrLoggedOut)
		}
	}
	return s.awaitClose(ctx)
}

// logoutResponse takes the Logout Response.
func (s *Session) logoutResponse() error {
	r, _ := proto.DecodeLogoutResponse(&s.rhdr)
	if err := s.ctlCheck(proto.OpLogoutResponse); err != nil {
		return err
	}
	if s.lay.DataLen != 0 {
		return s.bad(offDSL, "Logout Response with a data segment")
	}
	if err := s.statSN(r.StatSN); err != nil {
		return err
	}
	if err := s.window(); err != nil {
		return err
	}
	s.ctl.logout, s.ctl.done = r, true
	return nil
}

// awaitClose waits for the target to close the connection after a logout: anything
// it still sends is a violation.
func (s *Session) awaitClose(ctx context.Context) error {
	defer bound(ctx, s.timeout, s.nc.SetDeadline)()
	var b [1]byte
	_, err := s.br.Read(b[:])
	switch {
	case err == nil:
		return s.fail(&ProtocolError{Opcode: proto.OpLogoutResponse, Reason: "data after the Logout Response"})
	case !errors.Is(err, os.ErrDeadlineExceeded):
		s.fail(ErrClosed) // a FIN, or a reset: either way the connection is gone
		return nil
	}
	return s.fail(fmt.Errorf("logout: the target did not close the connection: %w", ErrTimeout))
}
