package iscsi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// ini is a minimal iSCSI initiator for the tests, built from engine/proto/iscsi's
// codecs: a login with explicit keys, then PDUs framed by hand (digests, padding) over
// a real TCP socket. Sending and receiving use preallocated buffers, so a command
// round trip allocates nothing on the initiator's side (alloc_test.go counts on it).
type ini struct {
	t    testing.TB
	c    *net.TCPConn
	isid proto.ISID
	cid  uint16
	tsih uint16

	cmdSN     uint32 // the next non-immediate command's CmdSN
	expStatSN uint32
	// expCmdSN and maxCmdSN are the window the target last reported.
	expCmdSN, maxCmdSN uint32
	itt                uint32

	p    negotiated
	hd   bool // header digests in force (full feature phase)
	dd   bool // data digests in force
	wbuf []byte
	rbuf []byte
	// dins records the Data-In headers of the last exec.
	dins []proto.DataIn
	// timeout bounds each receive.
	timeout time.Duration
	// fixedDeadline: the alloc test sets one deadline for the whole run.
	fixedDeadline bool
	// Scratch for the hot path, so that nothing escapes to the heap per PDU.
	rhdr [proto.BHSLen]byte
	rdg  [4]byte
	sbhs proto.BHS
}

// negotiated are the login's results, as the initiator sees them.
type negotiated struct {
	maxRecvDSL uint32 // what the initiator declared: the cap on what the target sends
	maxXmitDSL uint32 // what the target declared: the cap on what the initiator sends
	mbl, fbl   uint32
	immData    bool
	initR2T    bool
	maxR2T     uint32
	hd, dd     bool
	keys       map[string]string // every key of every login response
}

// pdu is one received PDU. data aliases the initiator's receive buffer until the next
// receive.
type pdu struct {
	bhs  proto.BHS
	data []byte
}

func (p *pdu) op() proto.Opcode { return p.bhs.Opcode() }

func (p pdu) String() string {
	return fmt.Sprintf("%v itt=%#x dsl=%d", p.op(), p.bhs.ITT(), p.bhs.DataSegmentLength())
}

// testISIDSeq numbers the initiators' ISIDs (tests run in parallel).
var testISIDSeq atomic.Uint32

// dial connects a new initiator to addr.
func dial(t testing.TB, addr string) *ini {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hangUp(c.(*net.TCPConn)) })
	seq := testISIDSeq.Add(1)
	in := &ini{t: t, c: c.(*net.TCPConn), cmdSN: 1, wbuf: make([]byte, 0, 1<<20+4096), rbuf: make([]byte, 1<<20+4096),
		dins: make([]proto.DataIn, 0, 4096), timeout: 10 * time.Second}
	in.isid = proto.ISID{0x80, 0x12, 0x34, byte(seq >> 16), byte(seq >> 8), byte(seq)}
	return in
}

// hangUp closes a test connection gracefully: FIN, then what the target still sends is
// drained, so that the close is never a reset. (A reset while the target has output
// queued crashes it today: see TestPeerResetWithOutputQueued. A test that fails with
// PDUs in flight must not take the rest of the package down with it.)
func hangUp(c *net.TCPConn) {
	c.CloseWrite()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()
}

// frame lays out one PDU in wbuf: BHS (its DataSegmentLength already set), header
// digest, data, padding, data digest, as the connection's digests say.
func (in *ini) frame(b *proto.BHS, data []byte) []byte {
	w := append(in.wbuf[:0], b[:]...)
	if in.hd {
		w = binary.LittleEndian.AppendUint32(w, proto.HeaderDigest(b, nil))
	}
	if len(data) > 0 {
		w = append(w, data...)
		w = append(w, make0[:proto.PadLen(uint32(len(data)))]...)
		if in.dd {
			w = binary.LittleEndian.AppendUint32(w, proto.DataDigest(data))
		}
	}
	in.wbuf = w[:0]
	return w
}

var make0 [4]byte

func (in *ini) send(b []byte) {
	in.t.Helper()
	if err := in.trySend(b); err != nil {
		in.t.Fatalf("send: %v", err)
	}
}

func (in *ini) trySend(b []byte) error {
	if !in.fixedDeadline {
		in.c.SetWriteDeadline(time.Now().Add(in.timeout))
	}
	_, err := in.c.Write(b)
	return err
}

func (in *ini) sendPDU(b *proto.BHS, data []byte) { in.t.Helper(); in.send(in.frame(b, data)) }

// recv reads one PDU, checking its digests, and follows the target's StatSN and
// command window.
func (in *ini) recv() pdu {
	in.t.Helper()
	p, err := in.tryRecv(in.timeout)
	if err != nil {
		in.t.Fatalf("recv: %v", err)
	}
	return p
}

var errDigest = errors.New("digest mismatch in a PDU from the target")

func (in *ini) tryRecv(d time.Duration) (pdu, error) {
	var p pdu
	if !in.fixedDeadline {
		in.c.SetReadDeadline(time.Now().Add(d))
	}
	if _, err := io.ReadFull(in.c, in.rhdr[:]); err != nil {
		return p, err
	}
	p.bhs = in.rhdr
	dg := in.rdg[:]
	if in.hd {
		if _, err := io.ReadFull(in.c, dg); err != nil {
			return p, err
		}
		if binary.LittleEndian.Uint32(dg) != proto.HeaderDigest((*proto.BHS)(&in.rhdr), nil) {
			return p, errDigest
		}
	}
	n := int(p.bhs.DataSegmentLength())
	whole := int(p.bhs.AHSLen()) + n + int(proto.PadLen(uint32(n)))
	if whole > len(in.rbuf) {
		in.rbuf = make([]byte, whole)
	}
	if _, err := io.ReadFull(in.c, in.rbuf[:whole]); err != nil {
		return p, err
	}
	p.data = in.rbuf[int(p.bhs.AHSLen()) : int(p.bhs.AHSLen())+n]
	if in.dd && n > 0 {
		if _, err := io.ReadFull(in.c, dg); err != nil {
			return p, err
		}
		if binary.LittleEndian.Uint32(dg) != proto.DataDigest(p.data) {
			return p, errDigest
		}
	}
	in.track(&p)
	return p, nil
}

// track follows StatSN and the command window.
func (in *ini) track(p *pdu) {
	b := &p.bhs
	statSN := binary.BigEndian.Uint32(b[24:28])
	switch b.Opcode() {
	case proto.OpSCSIResponse, proto.OpTMFResponse, proto.OpTextResponse, proto.OpLogoutResponse,
		proto.OpReject, proto.OpLoginResponse, proto.OpAsyncMessage:
		in.expStatSN = statSN + 1
	case proto.OpNOPIn:
		if b.ITT() != proto.ReservedTag {
			in.expStatSN = statSN + 1
		}
	case proto.OpDataIn:
		if b[1]&0x01 != 0 {
			in.expStatSN = statSN + 1
		}
	}
	if b.Opcode() != proto.OpLoginResponse {
		in.expCmdSN = binary.BigEndian.Uint32(b[28:32])
		in.maxCmdSN = binary.BigEndian.Uint32(b[32:36])
	}
}

// expectNothing checks that the target sends nothing for d.
func (in *ini) expectNothing(d time.Duration, why string) {
	in.t.Helper()
	p, err := in.tryRecv(d)
	if err == nil {
		in.t.Fatalf("%s: got %v", why, p)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		in.t.Fatalf("%s: connection failed: %v", why, err)
	}
}

// expectEOF checks that the target closes the connection without sending anything
// more.
func (in *ini) expectEOF(why string) {
	in.t.Helper()
	p, err := in.tryRecv(10 * time.Second)
	if err == nil {
		in.t.Fatalf("%s: got %v, want the connection closed", why, p)
	}
	if !closedErr(err) {
		in.t.Fatalf("%s: want the connection closed, got %v", why, err)
	}
}

func closedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (in *ini) nextITT() uint32 {
	in.itt++
	if in.itt == proto.ReservedTag {
		in.itt = 1
	}
	return in.itt
}

// ---- login ----

// loginOpts are the keys a login offers. Zero values take the defaults noted.
type loginOpts struct {
	initiator string // testInit
	target    string // testIQN; ignored for discovery
	discovery bool
	tsih      uint16
	cid       uint16
	cmdSN     uint32 // 1
	// hd, dd offer CRC32C only; otherwise None only.
	hd, dd     bool
	maxRecvDSL uint32 // 262144
	mbl, fbl   uint32 // 262144, 65536
	immData    *bool  // Yes
	initR2T    *bool  // Yes
	maxR2T     uint32 // 1
	maxConns   uint32 // not offered (1)
	// authMethod starts in the security stage offering it ("CHAP" or "None").
	authMethod string
	chapUser   string
	chapSecret string
}

// login runs the login; it returns the final status (and Fatal on protocol surprises).
func (in *ini) login(o loginOpts) proto.Status {
	in.t.Helper()
	if o.initiator == "" {
		o.initiator = testInit
	}
	if o.target == "" {
		o.target = testIQN
	}
	if o.cmdSN == 0 {
		o.cmdSN = 1
	}
	if o.maxRecvDSL == 0 {
		o.maxRecvDSL = 262144
	}
	if o.mbl == 0 {
		o.mbl = 262144
	}
	if o.fbl == 0 {
		o.fbl = min(65536, o.mbl)
	}
	if o.maxR2T == 0 {
		o.maxR2T = 1
	}
	in.tsih, in.cid, in.cmdSN = o.tsih, o.cid, o.cmdSN
	in.p = negotiated{keys: map[string]string{}, maxXmitDSL: proto.DefaultMaxRecvDataSegmentLength,
		mbl: 262144, fbl: 65536, immData: true, initR2T: true, maxR2T: 1}
	itt := in.nextITT()
	ident := func(kv []byte) []byte {
		kv = proto.AppendKey(kv, "InitiatorName", o.initiator)
		if o.discovery {
			return proto.AppendKey(kv, "SessionType", "Discovery")
		}
		kv = proto.AppendKey(kv, "SessionType", "Normal")
		return proto.AppendKey(kv, "TargetName", o.target)
	}
	var kv []byte
	stage := proto.StageOperational
	if o.authMethod != "" {
		stage = proto.StageSecurity
		kv = proto.AppendKey(ident(nil), "AuthMethod", o.authMethod)
	}
	first := true
	var sent map[string]bool
	for round := 0; round < 10; round++ {
		transit, nsg := true, proto.StageFullFeature
		if stage == proto.StageSecurity {
			nsg = proto.StageOperational
			if o.authMethod == "CHAP" && !in.chapDone(kv) {
				transit = false
			}
		} else if sent == nil {
			sent = map[string]bool{}
			if first {
				kv = ident(kv)
			}
			kv = in.operationalKeys(kv, o, sent)
		}
		first = false
		req := proto.LoginRequest{Transit: transit, CSG: stage, NSG: nsg, ISID: in.isid, TSIH: o.tsih,
			ITT: itt, CID: o.cid, CmdSN: o.cmdSN, ExpStatSN: in.expStatSN, DataSegmentLength: uint32(len(kv))}
		if !transit {
			req.NSG = 0
		}
		var b proto.BHS
		req.Put(&b)
		in.sendPDU(&b, kv)
		p := in.recv()
		if p.op() != proto.OpLoginResponse {
			in.t.Fatalf("login: got %v", p)
		}
		resp, _ := proto.DecodeLoginResponse(&p.bhs)
		if !resp.Status.Success() {
			return resp.Status
		}
		kvs, err := proto.ParseText(p.data)
		if err != nil {
			in.t.Fatalf("login response text %q: %v", p.data, err)
		}
		for _, x := range kvs {
			in.p.keys[x.Key] = x.Value
		}
		if resp.Transit && resp.NSG == proto.StageFullFeature {
			in.tsih = resp.TSIH
			in.expCmdSN, in.maxCmdSN = resp.ExpCmdSN, resp.MaxCmdSN
			in.loggedIn(o)
			return resp.Status
		}
		kv = nil
		switch {
		case resp.Transit && resp.NSG == proto.StageOperational:
			stage = proto.StageOperational
		case stage == proto.StageSecurity:
			kv = in.chapStep(kvs, o)
		default:
			// The target offered keys: accept them as they are.
			for _, x := range kvs {
				if !sent[x.Key] && x.Key != "TargetPortalGroupTag" && x.Key != "TargetAlias" {
					kv = proto.AppendKey(kv, x.Key, x.Value)
				}
			}
		}
	}
	in.t.Fatal("login did not finish in 10 rounds")
	return 0
}

// chapDone reports whether the pending security request carries the CHAP response.
func (in *ini) chapDone(kv []byte) bool {
	kvs, _ := proto.ParseText(kv)
	_, ok := proto.LookupKey(kvs, "CHAP_R")
	return ok
}

func (in *ini) chapStep(kvs []proto.KeyValue, o loginOpts) []byte {
	c, ok := proto.LookupKey(kvs, "CHAP_C")
	if !ok {
		return proto.AppendKey(nil, "CHAP_A", "5")
	}
	id, _ := proto.LookupKey(kvs, "CHAP_I")
	n, err := proto.ParseNumber(id)
	if err != nil {
		in.t.Fatalf("CHAP_I %q: %v", id, err)
	}
	chal, err := proto.ParseBinary(c, proto.MaxCHAPChallengeLen)
	if err != nil {
		in.t.Fatalf("CHAP_C %q: %v", c, err)
	}
	r := proto.CHAPResponse(proto.CHAPMD5, byte(n), []byte(o.chapSecret), chal)
	kv := proto.AppendKey(nil, "CHAP_N", o.chapUser)
	kv = append(kv, "CHAP_R="...)
	return append(proto.AppendHex(kv, r), 0)
}

func yesNo(p *bool, def bool) string {
	if p != nil {
		def = *p
	}
	return proto.FormatBool(def)
}

func (in *ini) operationalKeys(kv []byte, o loginOpts, sent map[string]bool) []byte {
	add := func(k, v string) {
		kv = proto.AppendKey(kv, k, v)
		sent[k] = true
	}
	dg := func(on bool) string {
		if on {
			return "CRC32C"
		}
		return "None"
	}
	add("HeaderDigest", dg(o.hd))
	add("DataDigest", dg(o.dd))
	add("MaxRecvDataSegmentLength", strconv.FormatUint(uint64(o.maxRecvDSL), 10))
	in.p.maxRecvDSL = o.maxRecvDSL
	if o.discovery || o.tsih != 0 {
		return kv
	}
	add("MaxBurstLength", strconv.FormatUint(uint64(o.mbl), 10))
	add("FirstBurstLength", strconv.FormatUint(uint64(o.fbl), 10))
	add("ImmediateData", yesNo(o.immData, true))
	add("InitialR2T", yesNo(o.initR2T, true))
	add("MaxOutstandingR2T", strconv.FormatUint(uint64(o.maxR2T), 10))
	add("ErrorRecoveryLevel", "0")
	add("DataPDUInOrder", "Yes")
	add("DataSequenceInOrder", "Yes")
	add("DefaultTime2Wait", "2")
	add("DefaultTime2Retain", "20")
	if o.maxConns != 0 {
		add("MaxConnections", strconv.FormatUint(uint64(o.maxConns), 10))
	}
	return kv
}

// loggedIn takes the negotiated values from the target's answers.
func (in *ini) loggedIn(o loginOpts) {
	k := in.p.keys
	num := func(key string, def uint32) uint32 {
		v, ok := k[key]
		if !ok || v == proto.ValueIrrelevant {
			return def
		}
		n, err := proto.ParseNumber(v)
		if err != nil {
			in.t.Fatalf("%s=%q: %v", key, v, err)
		}
		return uint32(n)
	}
	in.p.maxXmitDSL = num("MaxRecvDataSegmentLength", proto.DefaultMaxRecvDataSegmentLength)
	in.p.mbl = num("MaxBurstLength", 262144)
	in.p.fbl = num("FirstBurstLength", 65536)
	in.p.maxR2T = num("MaxOutstandingR2T", 1)
	in.p.immData = k["ImmediateData"] != "No"
	in.p.initR2T = k["InitialR2T"] != "No"
	in.p.hd = k["HeaderDigest"] == "CRC32C"
	in.p.dd = k["DataDigest"] == "CRC32C"
	in.hd, in.dd = in.p.hd, in.p.dd
}

// mustLogin logs in to the test node with o and fails the test unless it succeeds.
func (in *ini) mustLogin(o loginOpts) {
	in.t.Helper()
	if st := in.login(o); !st.Success() {
		in.t.Fatalf("login: status %v", st)
	}
}

// connect dials and logs in to the test node, then clears the POWER ON unit attention
// every new nexus starts with.
func connect(t testing.TB, addr string, o loginOpts) *ini {
	t.Helper()
	in := dial(t, addr)
	in.mustLogin(o)
	if !o.discovery {
		in.clearUA()
	}
	return in
}

// clearUA sends TEST UNIT READY until it is GOOD.
func (in *ini) clearUA() {
	in.t.Helper()
	for range 4 {
		if r := in.exec(cmdSpec{cdb: tur()}); r.status == uint8(pscsi.StatusGood) {
			return
		}
	}
	in.t.Fatal("TEST UNIT READY never GOOD")
}

// ---- SCSI commands ----

func tur() [16]byte { return [16]byte{} }

func read16(lba uint64, blocks uint32) [16]byte {
	var c [16]byte
	c[0] = 0x88
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

func write16(lba uint64, blocks uint32) [16]byte {
	c := read16(lba, blocks)
	c[0] = 0x8a
	return c
}

// cmdSpec is one SCSI command for exec.
type cmdSpec struct {
	cdb         [16]byte
	read, write bool
	edtl        uint32
	out         []byte // data-out (len >= what the target asks for)
	in          []byte // where Data-In goes (len >= edtl)
	immediate   bool
	// noImmediate sends no immediate data even where the session allows it.
	noImmediate bool
}

// result is a command's outcome.
type result struct {
	itt      uint32
	cmdSN    uint32
	response proto.SCSIResponseCode
	status   uint8
	over     bool
	under    bool
	resid    uint32
	sense    pscsi.Sense
	senseLen int
	// collapsed: the status came in the last Data-In (S bit).
	collapsed bool
	dataIn    uint32 // Data-In bytes received
	r2ts      int
	maxCmdSN  uint32
	expCmdSN  uint32
}

// startCmd sends the SCSI Command with its immediate data, and the unsolicited Data-Out
// the session allows; it returns the ITT and how far the data went.
func (in *ini) startCmd(s *cmdSpec) (itt, cmdSN uint32) {
	in.t.Helper()
	itt = in.nextITT()
	cmdSN = in.cmdSN
	if !s.immediate {
		in.cmdSN++
	}
	imm, unsol := uint32(0), uint32(0)
	if s.write {
		if in.p.immData && !s.noImmediate {
			imm = min(s.edtl, in.p.fbl, in.p.maxXmitDSL, uint32(len(s.out)))
		}
		unsol = imm
		if !in.p.initR2T {
			unsol = max(imm, min(s.edtl, in.p.fbl, uint32(len(s.out))))
		}
	}
	cmd := proto.SCSICommand{Immediate: s.immediate, Final: unsol == imm, Read: s.read, Write: s.write,
		Attr: proto.TaskSimple, DataSegmentLength: imm, ITT: itt, ExpectedDataTransferLength: s.edtl,
		CmdSN: cmdSN, ExpStatSN: in.expStatSN, CDB: s.cdb}
	cmd.Put(&in.sbhs)
	in.sendPDU(&in.sbhs, s.out[:imm])
	if unsol > imm {
		in.dataOut(itt, proto.ReservedTag, [8]byte{}, s.out, imm, unsol)
	}
	return itt, cmdSN
}

// dataOut sends [off, end) of out as one Data-Out sequence: PDUs of at most the
// target's MaxRecvDataSegmentLength, DataSN from 0, F on the last.
func (in *ini) dataOut(itt, ttt uint32, lun [8]byte, out []byte, off, end uint32) {
	in.t.Helper()
	for sn := uint32(0); off < end; sn++ {
		n := min(end-off, in.p.maxXmitDSL)
		d := proto.DataOut{Final: off+n == end, DataSegmentLength: n, LUN: lun, ITT: itt, TTT: ttt,
			ExpStatSN: in.expStatSN, DataSN: sn, BufferOffset: off}
		d.Put(&in.sbhs)
		in.sendPDU(&in.sbhs, out[off:off+n])
		off += n
	}
}

// exec runs a command to its status: immediate and unsolicited data as the session
// allows, R2Ts answered from s.out, Data-In placed into s.in; target pings are
// answered on the way.
func (in *ini) exec(s cmdSpec) result {
	in.t.Helper()
	itt, cmdSN := in.startCmd(&s)
	return in.finish(&s, itt, cmdSN)
}

// finish collects a started command's R2Ts, Data-In and status.
func (in *ini) finish(s *cmdSpec, itt, cmdSN uint32) result {
	in.t.Helper()
	r := result{itt: itt, cmdSN: cmdSN}
	in.dins = in.dins[:0]
	for {
		p := in.recv()
		switch p.op() {
		case proto.OpR2T:
			r2t, _ := proto.DecodeR2T(&p.bhs)
			if r2t.ITT != itt {
				in.t.Fatalf("R2T for ITT %#x while waiting for %#x", r2t.ITT, itt)
			}
			r.r2ts++
			end := r2t.BufferOffset + r2t.DesiredDataTransferLength
			if int(end) > len(s.out) {
				in.t.Fatalf("R2T asks for [%d, %d) of a %d-byte write", r2t.BufferOffset, end, len(s.out))
			}
			in.dataOut(itt, r2t.TTT, r2t.LUN, s.out, r2t.BufferOffset, end)
		case proto.OpDataIn:
			d, _ := proto.DecodeDataIn(&p.bhs)
			if d.ITT != itt {
				in.t.Fatalf("Data-In for ITT %#x while waiting for %#x", d.ITT, itt)
			}
			in.dins = append(in.dins, d)
			if int(d.BufferOffset)+len(p.data) > len(s.in) {
				in.t.Fatalf("Data-In [%d, +%d) beyond the %d-byte buffer", d.BufferOffset, len(p.data), len(s.in))
			}
			copy(s.in[d.BufferOffset:], p.data)
			r.dataIn += uint32(len(p.data))
			if d.HasStatus {
				r.collapsed, r.status, r.over, r.under, r.resid = true, d.Status, d.Overflow, d.Underflow, d.ResidualCount
				r.expCmdSN, r.maxCmdSN = d.ExpCmdSN, d.MaxCmdSN
				return r
			}
		case proto.OpSCSIResponse:
			rsp, _ := proto.DecodeSCSIResponse(&p.bhs)
			if rsp.ITT != itt {
				in.t.Fatalf("SCSI Response for ITT %#x while waiting for %#x", rsp.ITT, itt)
			}
			r.response, r.status, r.over, r.under, r.resid = rsp.Response, rsp.Status, rsp.Overflow, rsp.Underflow, rsp.ResidualCount
			r.expCmdSN, r.maxCmdSN = rsp.ExpCmdSN, rsp.MaxCmdSN
			if len(p.data) > 0 {
				sense, _, err := proto.SplitSenseData(p.data)
				if err != nil {
					in.t.Fatalf("sense data: %v", err)
				}
				r.senseLen = len(sense)
				r.sense, _ = pscsi.DecodeSense(sense)
			}
			return r
		case proto.OpNOPIn:
			in.answerPing(&p)
		default:
			in.t.Fatalf("waiting for ITT %#x: unexpected %v", itt, p)
		}
	}
}

// answerPing answers a target's NOP-In ping; other NOP-Ins are a test failure here.
func (in *ini) answerPing(p *pdu) {
	in.t.Helper()
	n, _ := proto.DecodeNOPIn(&p.bhs)
	if n.ITT != proto.ReservedTag {
		in.t.Fatalf("unexpected NOP-In answer %v", p.String())
	}
	in.pong(n)
}

// pong answers the target ping n.
func (in *ini) pong(n proto.NOPIn) {
	in.t.Helper()
	out := proto.NOPOut{Immediate: true, LUN: n.LUN, ITT: proto.ReservedTag, TTT: n.TTT, CmdSN: in.cmdSN,
		ExpStatSN: in.expStatSN}
	var b proto.BHS
	out.Put(&b)
	in.sendPDU(&b, nil)
}

// good fails the test unless r is GOOD.
func (r result) good(t testing.TB, what string) {
	t.Helper()
	if r.response != proto.ResponseCompleted || r.status != uint8(pscsi.StatusGood) {
		t.Fatalf("%s: response %v status %#x sense %v/%v", what, r.response, r.status, r.sense.Key, r.sense.Code)
	}
}

// writeBlocks writes data at lba with WRITE(16) through whatever the session allows.
func (in *ini) writeBlocks(lba uint64, data []byte) result {
	in.t.Helper()
	return in.exec(cmdSpec{cdb: write16(lba, uint32(len(data)/testBlock)), write: true,
		edtl: uint32(len(data)), out: data})
}

// readBlocks reads n bytes at lba with READ(16) into buf.
func (in *ini) readBlocks(lba uint64, buf []byte) result {
	in.t.Helper()
	return in.exec(cmdSpec{cdb: read16(lba, uint32(len(buf)/testBlock)), read: true,
		edtl: uint32(len(buf)), in: buf})
}

// ---- control PDUs ----

// sendNOP sends a NOP-Out ping with itt and data.
func (in *ini) sendNOP(itt uint32, immediate bool, data []byte) {
	in.t.Helper()
	n := proto.NOPOut{Immediate: immediate, DataSegmentLength: uint32(len(data)), ITT: itt,
		TTT: proto.ReservedTag, CmdSN: in.cmdSN, ExpStatSN: in.expStatSN}
	if !immediate {
		in.cmdSN++
	}
	var b proto.BHS
	n.Put(&b)
	in.sendPDU(&b, data)
}

// ping sends a NOP-Out and waits for its NOP-In, which must echo data.
func (in *ini) ping(data []byte) {
	in.t.Helper()
	itt := in.nextITT()
	in.sendNOP(itt, true, data)
	for {
		p := in.recv()
		if p.op() != proto.OpNOPIn {
			in.t.Fatalf("waiting for NOP-In: got %v", p)
		}
		n, _ := proto.DecodeNOPIn(&p.bhs)
		if n.ITT == proto.ReservedTag {
			in.answerPing(&p)
			continue
		}
		if n.ITT != itt || n.TTT != proto.ReservedTag || string(p.data) != string(data) {
			in.t.Fatalf("NOP-In itt %#x ttt %#x data %d bytes; want itt %#x, ttt ffffffff, %d bytes echoed",
				n.ITT, n.TTT, len(p.data), itt, len(data))
		}
		return
	}
}

// sendTMF sends an immediate task management request and returns its ITT.
func (in *ini) sendTMF(fn proto.TMFunction, lun [8]byte, ref, refCmdSN uint32) uint32 {
	in.t.Helper()
	itt := in.nextITT()
	r := proto.TMFRequest{Immediate: true, Function: fn, LUN: lun, ITT: itt, ReferencedTaskTag: ref,
		CmdSN: in.cmdSN, ExpStatSN: in.expStatSN, RefCmdSN: refCmdSN}
	var b proto.BHS
	r.Put(&b)
	in.sendPDU(&b, nil)
	return itt
}

// sendLogout sends an immediate Logout Request and returns its ITT.
func (in *ini) sendLogout(reason proto.LogoutReason) uint32 {
	in.t.Helper()
	itt := in.nextITT()
	r := proto.LogoutRequest{Immediate: true, Reason: reason, ITT: itt, CID: in.cid, CmdSN: in.cmdSN,
		ExpStatSN: in.expStatSN}
	var b proto.BHS
	r.Put(&b)
	in.sendPDU(&b, nil)
	return itt
}

// text runs a Text Request to its final response (fetching continuations) and
// returns the answer's pairs.
func (in *ini) text(kv []byte) []proto.KeyValue {
	in.t.Helper()
	itt := in.nextITT()
	ttt := proto.ReservedTag
	var all []byte
	for {
		r := proto.TextRequest{Immediate: true, Final: true, DataSegmentLength: uint32(len(kv)), ITT: itt,
			TTT: ttt, CmdSN: in.cmdSN, ExpStatSN: in.expStatSN}
		var b proto.BHS
		r.Put(&b)
		in.sendPDU(&b, kv)
		p := in.recv()
		if p.op() != proto.OpTextResponse {
			in.t.Fatalf("text: got %v", p)
		}
		resp, _ := proto.DecodeTextResponse(&p.bhs)
		all = append(all, p.data...)
		if resp.Final {
			return splitText(in.t, all)
		}
		kv, ttt = nil, resp.TTT
	}
}

// splitText splits key=value text into its pairs, keeping repeated keys (a
// SendTargets answer repeats TargetName and TargetAddress).
func splitText(t testing.TB, b []byte) []proto.KeyValue {
	t.Helper()
	var kvs []proto.KeyValue
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	for _, f := range bytes.Split(b, []byte{0}) {
		k, v, ok := bytes.Cut(f, []byte("="))
		if !ok {
			t.Fatalf("text %q: pair %q without '='", b, f)
		}
		kvs = append(kvs, proto.KeyValue{Key: string(k), Value: string(v)})
	}
	return kvs
}

// recvOp receives the next PDU, answering target pings, and checks its opcode.
func (in *ini) recvOp(op proto.Opcode) pdu {
	in.t.Helper()
	for {
		p := in.recv()
		if p.op() == proto.OpNOPIn && p.bhs.ITT() == proto.ReservedTag {
			in.answerPing(&p)
			continue
		}
		if p.op() != op {
			in.t.Fatalf("got %v, want %v", &p, op)
		}
		return p
	}
}

// rejectOf receives a Reject and returns its reason and the rejected header's opcode.
func (in *ini) expectReject(reason proto.RejectReason, op proto.Opcode) {
	in.t.Helper()
	p := in.recvOp(proto.OpReject)
	r, _ := proto.DecodeReject(&p.bhs)
	if r.Reason != reason {
		in.t.Fatalf("Reject reason %v, want %v", r.Reason, reason)
	}
	if len(p.data) < proto.BHSLen || proto.Opcode(p.data[0]&0x3f) != op {
		in.t.Fatalf("Reject carries %d bytes of header (opcode %#x), want the rejected %v", len(p.data),
			firstByte(p.data), op)
	}
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0] & 0x3f
}
