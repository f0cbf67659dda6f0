package initiator_test

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"sluice/engine/bdev"
	"sluice/engine/iscsi"
	"sluice/engine/iscsi/initiator"
	proto "sluice/engine/proto/iscsi"
	pscsi "sluice/engine/proto/scsi"
)

// noTargetComplaints checks that the target found nothing wrong with what the
// initiator sent: no Reject, no protocol or digest error, no command dropped outside
// the window, no NOP timeout.
func (e *env) noTargetComplaints() {
	e.t.Helper()
	st := e.tgt.Stats()
	if st.Rejects != 0 || st.ProtocolErrors != 0 || st.DataDigestErrors != 0 || st.HeaderDigestErrors != 0 ||
		st.CmdSNDropped != 0 || st.NopTimeouts != 0 {
		e.t.Fatalf("the target complained: %+v", st)
	}
}

// TestLoginNegotiation: what the initiator offers and the target answers ends up in
// Params and in the target's view of the connection, and the session then runs with
// it: digests on every PDU, Data-In cut at the declared segment size.
func TestLoginNegotiation(t *testing.T) {
	e := newEnv(t, envOpts{opts: iscsi.Options{MaxRecvDataSegmentLength: 32768, MaxBurstLength: 524288,
		MaxOutstandingR2T: 4, InitialR2T: boolp(false)}})
	s := e.connect(initiator.Options{HeaderDigest: initiator.DigestCRC32C, DataDigest: initiator.DigestPreferCRC32C,
		MaxRecvDataSegmentLength: 16384, MaxBurstLength: 131072, FirstBurstLength: 16384, MaxOutstandingR2T: 8,
		ImmediateData: boolp(false), InitialR2T: boolp(false)})
	p := s.Params()
	want := initiator.Params{HeaderDigest: true, DataDigest: true, MaxRecvDataSegmentLength: 16384,
		MaxXmitDataSegmentLength: 32768, MaxBurstLength: 131072, FirstBurstLength: 16384, ImmediateData: false,
		InitialR2T: false, MaxOutstandingR2T: 4, MaxConnections: 1, ErrorRecoveryLevel: 0,
		TargetPortalGroupTag: testTPGT, AuthMethod: "None"}
	got := p
	got.ISID, got.TSIH, got.TargetName, got.Keys, got.DefaultTime2Wait, got.DefaultTime2Retain = [6]byte{}, 0, "", nil, 0, 0
	got.DataPDUInOrder, got.DataSequenceInOrder = false, false
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("negotiated\n%+v\nwant\n%+v", got, want)
	}
	if p.TSIH == 0 || p.TargetName != testIQN {
		t.Fatalf("TSIH %d, target %q", p.TSIH, p.TargetName)
	}
	cs := e.tgt.Connections()
	if len(cs) != 1 {
		t.Fatalf("%d connections", len(cs))
	}
	c := cs[0]
	if !c.HeaderDigest || !c.DataDigest || c.MaxXmitDSL != 16384 || c.MaxRecvDSL != 32768 || c.TSIH != p.TSIH ||
		c.Initiator != initiator.DefaultInitiatorName || c.ISID != p.ISID.String() {
		t.Fatalf("target's view: %+v", c)
	}
	d := pattern(96<<10, 1)
	if err := s.Write16(ctx(t), 0, 0, 192, d, false); err != nil {
		t.Fatal(err)
	}
	r, err := s.Exec(ctx(t), &initiator.Command{CDB: cdbRead16(0, 192), Read: true, Data: make([]byte, len(d))})
	if err != nil || !r.Good() || r.DataInPDUs != 6 || !r.Collapsed {
		t.Fatalf("96 KiB read: %v %+v; want GOOD in 6 Data-In of 16 KiB with the status in the last", err, r)
	}
	e.noTargetComplaints()
}

func cdbRead16(lba uint64, blocks uint32) [16]byte {
	var c [16]byte
	c[0] = 0x88
	for i := range 8 {
		c[2+i] = byte(lba >> (56 - 8*i))
	}
	c[10], c[11], c[12], c[13] = byte(blocks>>24), byte(blocks>>16), byte(blocks>>8), byte(blocks)
	return c
}

func cdbWrite16(lba uint64, blocks uint32) [16]byte {
	c := cdbRead16(lba, blocks)
	c[0] = 0x8a
	return c
}

// TestLoginRefused: a node that requires digests refuses an initiator offering None
// (status 0200) and takes one that prefers CRC32C; an unknown target is 0203; a
// required digest the target refuses fails the login on the initiator's side.
func TestLoginRefused(t *testing.T) {
	e := newEnv(t, envOpts{headerDigest: true, dataDigest: true})
	_, err := e.tryDial(initiator.Options{})
	var le *initiator.LoginError
	if !errors.As(err, &le) || le.Status != proto.StatusInitiatorError || !errors.Is(err, initiator.ErrLogin) {
		t.Fatalf("login offering no digest to a node requiring them: %v", err)
	}
	s := e.connect(initiator.Options{HeaderDigest: initiator.DigestPreferCRC32C, DataDigest: initiator.DigestPreferCRC32C})
	if p := s.Params(); !p.HeaderDigest || !p.DataDigest {
		t.Fatalf("digests %v %v", p.HeaderDigest, p.DataDigest)
	}
	_, err = e.tryDial(initiator.Options{TargetName: "iqn.2026-11.dev.sluice:nobody"})
	if !errors.As(err, &le) || le.Status != proto.StatusNotFound {
		t.Fatalf("login to an unknown target: %v", err)
	}
}

// TestCHAP: one-way and mutual CHAP with each algorithm, a wrong secret (0201), a
// target that proves the wrong secret (ErrTargetAuth on the initiator's side), and a
// node requiring CHAP from an initiator that offers none (0201).
func TestCHAP(t *testing.T) {
	const user, secret, muser, msecret = "alice", "alice-secret-1", "target", "target-secret-2"
	e := newEnv(t, envOpts{requireCHAP: true, secrets: []iscsi.CHAPSecret{
		{User: user, Secret: secret, MUser: muser, MSecret: msecret}}})
	for _, alg := range []proto.CHAPAlgorithm{proto.CHAPMD5, proto.CHAPSHA1, proto.CHAPSHA256, proto.CHAPSHA3256} {
		for _, mutual := range []bool{false, true} {
			c := &initiator.CHAP{User: user, Secret: secret, Algorithms: []proto.CHAPAlgorithm{alg}}
			if mutual {
				c.TargetUser, c.TargetSecret = muser, msecret
			}
			s := e.connect(initiator.Options{CHAP: c})
			if p := s.Params(); p.AuthMethod != "CHAP" || p.CHAPAlgorithm != alg {
				t.Fatalf("%v mutual %v: %s %v", alg, mutual, p.AuthMethod, p.CHAPAlgorithm)
			}
			if err := s.Logout(ctx(t)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var le *initiator.LoginError
	_, err := e.tryDial(initiator.Options{CHAP: &initiator.CHAP{User: user, Secret: "not-the-secret"}})
	if !errors.As(err, &le) || le.Status != proto.StatusAuthenticationFailure {
		t.Fatalf("wrong secret: %v", err)
	}
	_, err = e.tryDial(initiator.Options{CHAP: &initiator.CHAP{User: user, Secret: secret, TargetUser: muser,
		TargetSecret: "what-the-target-lacks"}})
	if !errors.Is(err, initiator.ErrTargetAuth) {
		t.Fatalf("target proving another secret: %v", err)
	}
	_, err = e.tryDial(initiator.Options{})
	if !errors.As(err, &le) || le.Status != proto.StatusAuthenticationFailure {
		t.Fatalf("no CHAP where it is required: %v", err)
	}
}

// TestDiscovery: a discovery session lists the node and its portal; a long answer
// (many nodes, a 512-byte receive segment) comes in Text Response continuations; a
// normal session's SendTargets= names its own node.
func TestDiscovery(t *testing.T) {
	e := newEnv(t, envOpts{})
	ts, err := initiator.Discover(ctx(t), e.addr, initiator.Options{})
	want := []initiator.TargetInfo{{Name: testIQN, Addresses: []initiator.TargetAddress{{Addr: e.addr, PortalGroupTag: testTPGT}}}}
	if err != nil || fmt.Sprint(ts) != fmt.Sprint(want) {
		t.Fatalf("Discover: %v %v, want %v", ts, err, want)
	}
	for i := range 20 {
		name := "extra" + strconv.Itoa(i)
		if _, err := bdev.CreateMalloc(e.bm, bdev.MallocParams{Name: name, NumBlocks: 64, BlockSize: 512}, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.tgt.CreateTargetNode(iscsi.NodeParams{Name: name, LUNs: []iscsi.LUNInfo{{BdevName: name}},
			PGIGMaps: []iscsi.PGIGMap{{PGTag: testTPGT, IGTag: testIG}}}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := initiator.DialDiscovery(ctx(t), e.addr, initiator.Options{MaxRecvDataSegmentLength: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ts, err = d.SendTargets(ctx(t), "All")
	if err != nil || len(ts) != 21 {
		t.Fatalf("SendTargets=All with 21 nodes: %d targets, %v", len(ts), err)
	}
	for _, x := range ts {
		if len(x.Addresses) != 1 || x.Addresses[0].Addr != e.addr {
			t.Fatalf("target %+v", x)
		}
	}
	if err := d.Logout(ctx(t)); err != nil {
		t.Fatal(err)
	}
	n := e.connect(initiator.Options{})
	ts, err = n.SendTargets(ctx(t), "")
	if err != nil || fmt.Sprint(ts) != fmt.Sprint(want) {
		t.Fatalf("SendTargets= on a normal session: %v %v", ts, err)
	}
	if ts, err = n.SendTargets(ctx(t), "Alle"); !errors.Is(err, initiator.ErrTextRejected) {
		t.Fatalf("SendTargets=Alle: %v %v", ts, err)
	}
	if ts, err = initiator.Discover(ctx(t), e.addr, initiator.Options{HeaderDigest: initiator.DigestCRC32C,
		DataDigest: initiator.DigestCRC32C}); err != nil || len(ts) != 21 {
		t.Fatalf("discovery with digests: %d targets, %v", len(ts), err)
	}
	if err := d.TestUnitReady(ctx(t), 0); !errors.Is(err, initiator.ErrDiscovery) && !errors.Is(err, initiator.ErrClosed) {
		t.Fatalf("SCSI command on a discovery session: %v", err)
	}
	e.noTargetComplaints()
}

// TestReadWriteMatrix writes and reads back transfers of several sizes through each
// way data can travel: immediate data, unsolicited Data-Out, R2Ts (several
// outstanding), bursts and segments smaller than the transfer, with and without
// digests; the target must find nothing to complain about.
func TestReadWriteMatrix(t *testing.T) {
	for _, tc := range []struct {
		name string
		tgt  iscsi.Options
		ini  initiator.Options
	}{
		{"defaults", iscsi.Options{}, initiator.Options{}},
		{"small segments and bursts, unsolicited, 4 R2Ts",
			iscsi.Options{MaxRecvDataSegmentLength: 8192, MaxBurstLength: 16384, FirstBurstLength: 8192,
				MaxOutstandingR2T: 4, InitialR2T: boolp(false)},
			initiator.Options{MaxRecvDataSegmentLength: 4096, MaxBurstLength: 16384, FirstBurstLength: 8192,
				InitialR2T: boolp(false), MaxOutstandingR2T: 4}},
		{"R2T only, digests",
			iscsi.Options{MaxOutstandingR2T: 2, MaxBurstLength: 65536},
			initiator.Options{ImmediateData: boolp(false), MaxOutstandingR2T: 2, HeaderDigest: initiator.DigestCRC32C,
				DataDigest: initiator.DigestCRC32C}},
		{"unsolicited Data-Out only",
			iscsi.Options{InitialR2T: boolp(false), MaxRecvDataSegmentLength: 4096},
			initiator.Options{ImmediateData: boolp(false), InitialR2T: boolp(false)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{opts: tc.tgt})
			s := e.connect(tc.ini)
			lba := uint64(0)
			for i, n := range []int{512, 4096, 65536 + 512, 1 << 20} {
				d := pattern(n, uint32(i+1))
				r, err := s.Exec(ctx(t), &initiator.Command{CDB: cdbWrite16(lba, uint32(n/testBlock)), Write: true, Data: d})
				if err != nil || !r.Good() {
					t.Fatalf("write %d: %v %+v", n, err, r)
				}
				back := make([]byte, n)
				r, err = s.Exec(ctx(t), &initiator.Command{CDB: cdbRead16(lba, uint32(n/testBlock)), Read: true, Data: back})
				if err != nil || !r.Good() || !bytes.Equal(back, d) {
					t.Fatalf("read %d: %v %+v, same %v", n, err, r, bytes.Equal(back, d))
				}
				lba += uint64(n / testBlock)
			}
			st := s.Stats()
			t.Logf("%+v", st)
			e.noTargetComplaints()
		})
	}
}

// TestPipelinedWindow: with a target queue depth of 4 and 32 commands submitted at
// once, the initiator sends only what the command window admits and the rest as it
// opens; a command sent outside the window would be dropped by the target and never
// complete.
func TestPipelinedWindow(t *testing.T) {
	e := newEnv(t, envOpts{queueDepth: 4})
	s := e.connect(initiator.Options{QueueDepth: 32})
	const n = 32
	bufs := make([][]byte, n)
	for tag := range n {
		bufs[tag] = pattern(4096, uint32(100+tag))
		if err := s.SubmitWrite(0, uint64(tag*8), 8, bufs[tag], tag%2 == 0, uint16(tag)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if exp, mx, next := s.Window(); !proto.SNLessEq(next-1, mx) || next-exp > 4 {
		t.Fatalf("after Flush: ExpCmdSN %d MaxCmdSN %d next %d: more sent than the window holds", exp, mx, next)
	}
	reapAll(t, s, n)
	for tag := range n {
		if err := s.SubmitRead(0, uint64(tag*8), 8, make([]byte, 4096), uint16(tag)); err != nil {
			t.Fatal(err)
		}
	}
	reapAll(t, s, n)
	for tag := range n {
		back := make([]byte, 4096)
		if err := s.Read16(ctx(t), 0, uint64(tag*8), 8, back); err != nil || !bytes.Equal(back, bufs[tag]) {
			t.Fatalf("tag %d read back: %v", tag, err)
		}
	}
	e.noTargetComplaints()
}

// reapAll reaps n completions and fails on any that is not GOOD.
func reapAll(t *testing.T, s *initiator.Session, n int) []initiator.Completion {
	t.Helper()
	var all []initiator.Completion
	cs := make([]initiator.Completion, 8)
	for len(all) < n {
		k, err := s.Reap(cs)
		if err != nil {
			t.Fatalf("reap after %d of %d: %v", len(all), n, err)
		}
		for _, c := range cs[:k] {
			if c.Err != nil || !c.Good() {
				t.Fatalf("tag %d: %v status %v sense %v", c.Tag, c.Err, c.Status, c.Sense)
			}
		}
		all = append(all, cs[:k]...)
	}
	return all
}

// TestResidualsAndSense: a READ(16) whose EDTL exceeds its transfer length reports
// underflow, one whose EDTL is shorter reports overflow and gets EDTL bytes; a write
// with more data than it transfers reports underflow; an unknown opcode is CHECK
// CONDITION with ILLEGAL REQUEST sense.
func TestResidualsAndSense(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := e.connect(initiator.Options{})
	d := pattern(4096, 7)
	if err := s.Write16(ctx(t), 0, 64, 8, d, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	r, err := s.Exec(ctx(t), &initiator.Command{CDB: cdbRead16(64, 8), Read: true, Data: buf})
	if err != nil || !r.Good() || !r.Underflow || r.Residual != 4096 || r.DataIn != 4096 || !bytes.Equal(buf[:4096], d) {
		t.Fatalf("read of 4 KiB with EDTL 8 KiB: %v %+v", err, r)
	}
	r, err = s.Exec(ctx(t), &initiator.Command{CDB: cdbRead16(64, 8), Read: true, Data: buf[:2048]})
	if err != nil || !r.Good() || !r.Overflow || r.Residual != 2048 || r.DataIn != 2048 || !bytes.Equal(buf[:2048], d[:2048]) {
		t.Fatalf("read of 4 KiB with EDTL 2 KiB: %v %+v", err, r)
	}
	r, err = s.Exec(ctx(t), &initiator.Command{CDB: cdbWrite16(80, 8), Write: true, Data: pattern(8192, 8)})
	if err != nil || !r.Good() || !r.Underflow || r.Residual != 4096 {
		t.Fatalf("write of 4 KiB with EDTL 8 KiB: %v %+v", err, r)
	}
	r, err = s.Exec(ctx(t), &initiator.Command{CDB: [16]byte{0: 0xff}})
	if err != nil || r.Status != pscsi.StatusCheckCondition || r.Sense.Key != pscsi.SenseKeyIllegalRequest ||
		r.SenseLen == 0 || len(r.SenseData()) != r.SenseLen {
		t.Fatalf("unknown opcode: %v %+v", err, r)
	}
	r, err = s.Exec(ctx(t), &initiator.Command{CDB: cdbRead16(64, 8), Read: true, Data: buf[:4096], Immediate: true})
	if err != nil || !r.Good() || !bytes.Equal(buf[:4096], d) {
		t.Fatalf("immediate read: %v %+v", err, r)
	}
	if err := s.TestUnitReady(ctx(t), 0); err != nil {
		t.Fatal(err)
	}
	if blocks, bs, err := s.ReadCapacity16(ctx(t), 0); err != nil || blocks != testBlocks || bs != testBlock {
		t.Fatalf("READ CAPACITY(16): %d × %d, %v", blocks, bs, err)
	}
	e.noTargetComplaints()
}

// TestTargetPings: the target pings an initiator idle for its NOP-In interval and
// drops one that does not answer within its NOP timeout. A session waiting for a slow
// write answers the pings that arrive meanwhile, and an idle one that polls answers
// them too; the target never times either out.
func TestTargetPings(t *testing.T) {
	e := newEnv(t, envOpts{module: "delay", writeDelay: 2200 * time.Millisecond,
		opts: iscsi.Options{NopInIntervalSec: 1, NopTimeoutSec: 1}})
	s := e.connect(initiator.Options{})
	if err := s.Write16(ctx(t), 0, 0, 8, pattern(4096, 1), false); err != nil {
		t.Fatalf("slow write: %v", err)
	}
	if s.Stats().TargetPings == 0 {
		t.Fatal("no target ping answered during a 2.2 s write with a 1 s NOP-In interval")
	}
	before := s.Stats().TargetPings
	for end := time.Now().Add(2200 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, err := s.Poll(nil); err != nil {
			t.Fatalf("poll: %v", err)
		}
	}
	if s.Stats().TargetPings == before {
		t.Fatal("no target ping answered while polling idle for 2.2 s")
	}
	if err := s.Ping(ctx(t), []byte("still here")); err != nil {
		t.Fatal(err)
	}
	e.noTargetComplaints()
}

// TestAbortAndLUNReset: ABORT TASK of a write inside a slow bdev ends it without status
// (ErrAborted) while the others complete; LOGICAL UNIT RESET ends every write in
// flight the same way; the next command meets the reset's unit attention; a finished
// tag has nothing to abort and a LUN without an LU answers "LUN does not exist".
func TestAbortAndLUNReset(t *testing.T) {
	e := newEnv(t, envOpts{module: "delay", writeDelay: 300 * time.Millisecond})
	s := e.connect(initiator.Options{QueueDepth: 8})
	d := pattern(4096, 3)
	submitWrites(t, s, d, 4)
	waitTasks(t, e, 4)
	if code, err := s.AbortTask(ctx(t), 2); err != nil || code != proto.TMFComplete {
		t.Fatalf("ABORT TASK: %v %v", code, err)
	}
	got := reapN(t, s, 4)
	for tag, c := range got {
		switch {
		case tag == 2 && !errors.Is(c.Err, initiator.ErrAborted):
			t.Fatalf("aborted write: %v %+v", c.Err, c.Result)
		case tag != 2 && (c.Err != nil || !c.Good()):
			t.Fatalf("write %d: %v %+v", tag, c.Err, c.Result)
		}
	}
	if _, err := s.AbortTask(ctx(t), 2); !errors.Is(err, initiator.ErrNothingOutstanding) {
		t.Fatalf("abort of a reaped tag: %v", err)
	}
	code, err := s.TaskManagement(ctx(t), initiator.TMFRequest{Function: proto.TMFAbortTask, LUN: 5, RefITT: 1234})
	if err != nil || code != proto.TMFLUNNotExist {
		t.Fatalf("ABORT TASK on LUN 5: %v %v", code, err)
	}
	submitWrites(t, s, d, 3)
	waitTasks(t, e, 3)
	if err := s.LUNReset(ctx(t), 0); err != nil {
		t.Fatal(err)
	}
	for tag, c := range reapN(t, s, 3) {
		if !errors.Is(c.Err, initiator.ErrAborted) {
			t.Fatalf("write %d after LUN RESET: %v %+v", tag, c.Err, c.Result)
		}
	}
	if s.Stats().AbortedTasks != 4 {
		t.Fatalf("%d tasks aborted, want 4", s.Stats().AbortedTasks)
	}
	err = s.TestUnitReady(ctx(t), 0)
	var se *initiator.StatusError
	if !errors.As(err, &se) || se.Sense.Key != pscsi.SenseKeyUnitAttention || se.Sense.Code != pscsi.ASCPowerOnResetOrBusDeviceReset {
		t.Fatalf("command after LUN RESET: %v, want UNIT ATTENTION 29h/00h", err)
	}
	if err := s.TestUnitReady(ctx(t), 0); err != nil {
		t.Fatal(err)
	}
	e.noTargetComplaints()
}

func submitWrites(t *testing.T, s *initiator.Session, d []byte, n int) {
	t.Helper()
	for tag := range n {
		if err := s.SubmitWrite(0, uint64(100+8*tag), uint32(len(d)/testBlock), d, false, uint16(tag)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

// waitTasks waits until the target has n tasks in flight on its one connection.
func waitTasks(t *testing.T, e *env, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, strconv.Itoa(n)+" tasks at the target", func() bool {
		cs := e.tgt.Connections()
		return len(cs) == 1 && cs[0].Tasks == n
	})
}

// reapN reaps n completions, by tag.
func reapN(t *testing.T, s *initiator.Session, n int) map[uint16]initiator.Completion {
	t.Helper()
	got := map[uint16]initiator.Completion{}
	cs := make([]initiator.Completion, n)
	for len(got) < n {
		k, err := s.Reap(cs)
		if err != nil {
			t.Fatalf("reap after %d of %d: %v", len(got), n, err)
		}
		for _, c := range cs[:k] {
			got[c.Tag] = c
		}
	}
	return got
}

// TestLogoutWithWritesInFlight: the target answers the writes running at logout
// before the Logout Response; they reap GOOD after the logout, the data is there, and
// the session is closed.
func TestLogoutWithWritesInFlight(t *testing.T) {
	e := newEnv(t, envOpts{module: "delay", writeDelay: 200 * time.Millisecond})
	s := e.connect(initiator.Options{})
	d := pattern(4096, 9)
	submitWrites(t, s, d, 4)
	waitTasks(t, e, 4)
	if err := s.Logout(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for tag, c := range reapN(t, s, 4) {
		if c.Err != nil || !c.Good() {
			t.Fatalf("write %d: %v %+v", tag, c.Err, c.Result)
		}
	}
	if _, err := s.Reap(make([]initiator.Completion, 1)); !errors.Is(err, initiator.ErrClosed) {
		t.Fatalf("reap after logout: %v", err)
	}
	n := e.connect(initiator.Options{})
	for tag := range 4 {
		back := make([]byte, 4096)
		if err := n.Read16(ctx(t), 0, uint64(100+8*tag), 8, back); err != nil || !bytes.Equal(back, d) {
			t.Fatalf("write %d after logout: %v", tag, err)
		}
	}
	waitFor(t, 5*time.Second, "one connection left", func() bool { return len(e.tgt.Connections()) == 1 })
	e.noTargetComplaints()
}

// TestReinstatement: a login with the ISID of a live session reinstates it: the target
// closes the old connection, the new session serves.
func TestReinstatement(t *testing.T) {
	e := newEnv(t, envOpts{})
	old := e.connect(initiator.Options{})
	s := e.connect(initiator.Options{ISID: old.Params().ISID})
	// The target ends the old session's connection on its own reactor, as SPDK does,
	// without holding the new login's response for it: a ping already under way may
	// still be answered, and then the connection goes.
	var err error
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); {
		err = old.Ping(ctx(t), nil)
	}
	if !errors.Is(err, initiator.ErrDisconnected) {
		t.Fatalf("ping on the reinstated session: %v", err)
	}
	if err := s.Ping(ctx(t), []byte("new")); err != nil {
		t.Fatal(err)
	}
	if s.Params().TSIH == old.Params().TSIH {
		t.Fatal("reinstated session kept its TSIH")
	}
}
