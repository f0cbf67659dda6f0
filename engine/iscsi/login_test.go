package iscsi

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	proto "sluice/engine/proto/iscsi"
)

// TestLoginNegotiation: a normal login with both digests and a small receive segment
// gets what it asked for, the target declares its own receive limit and portal group,
// burst lengths take the minimum, and the connection then runs with those values:
// digests on every PDU both ways, Data-In segments within the initiator's limit.
func TestLoginNegotiation(t *testing.T) {
	e := newEnv(t, envOpts{opts: Options{MaxRecvDataSegmentLength: 32768, MaxBurstLength: 524288}})
	in := dial(t, e.addr)
	in.mustLogin(loginOpts{hd: true, dd: true, maxRecvDSL: 16384, mbl: 131072, fbl: 16384})
	k := in.p.keys
	for key, want := range map[string]string{
		"HeaderDigest": "CRC32C", "DataDigest": "CRC32C", "MaxRecvDataSegmentLength": "32768",
		"TargetPortalGroupTag": "1", "MaxBurstLength": "131072", "FirstBurstLength": "16384",
		"ErrorRecoveryLevel": "0",
	} {
		if k[key] != want {
			t.Errorf("%s=%q, want %q (all keys %v)", key, k[key], want, k)
		}
	}
	if in.tsih == 0 {
		t.Fatal("final Login Response with TSIH 0")
	}
	cs := e.tgt.Connections()
	if len(cs) != 1 {
		t.Fatalf("%d connections, want 1", len(cs))
	}
	c := cs[0]
	if !c.HeaderDigest || !c.DataDigest || c.MaxXmitDSL != 16384 || c.MaxRecvDSL != 32768 ||
		c.Initiator != testInit || c.Target != testIQN || c.TSIH != in.tsih || c.State != "full_feature" {
		t.Fatalf("target's view of the connection: %+v", c)
	}
	// Digests are checked on every PDU the initiator receives (recv fails otherwise).
	in.clearUA()
	data := pattern(96<<10, 1)
	in.writeBlocks(0, data).good(t, "write")
	back := make([]byte, len(data))
	in.readBlocks(0, back).good(t, "read")
	if !bytes.Equal(back, data) {
		t.Fatal("read back differs")
	}
	for _, d := range in.dins {
		if d.DataSegmentLength > 16384 {
			t.Fatalf("Data-In of %d bytes above the declared 16384", d.DataSegmentLength)
		}
	}
	if len(in.dins) != 6 {
		t.Fatalf("96 KiB in %d Data-In PDUs, want 6 of 16 KiB", len(in.dins))
	}
}

// TestLoginDigestRequired: a node that requires digests negotiates CRC32C even when
// the initiator offers both, and refuses an initiator that offers None only.
func TestLoginDigestRequired(t *testing.T) {
	e := newEnv(t, envOpts{headerDigest: true, dataDigest: true})
	for _, o := range []loginOpts{{}, {hd: true}, {dd: true}} {
		in := dial(t, e.addr)
		if st := in.login(o); st.Success() {
			t.Fatalf("login offering HeaderDigest CRC32C %v, DataDigest CRC32C %v to a node requiring both: "+
				"%v, keys %v", o.hd, o.dd, st, in.p.keys)
		}
	}
	in := dial(t, e.addr)
	in.mustLogin(loginOpts{hd: true, dd: true})
	in.clearUA()
	// A node without the requirement takes None.
	e2 := newEnv(t, envOpts{})
	connect(t, e2.addr, loginOpts{}).ping(nil)
}

// TestDiscoverySendTargets: a discovery session lists, for SendTargets=All, the nodes
// the initiator may reach with the address and tag of their portal, and not a node
// whose initiator group refuses it; a normal session's SendTargets= names its own.
func TestDiscoverySendTargets(t *testing.T) {
	e := newEnv(t, envOpts{})
	if err := e.tgt.CreateInitiatorGroup(2, []string{"iqn.2026-11.dev.sluice:someone-else"}, nil); err != nil {
		t.Fatal(err)
	}
	mustMalloc(t, e, "b1")
	if err := e.tgt.CreateTargetNode(NodeParams{Name: "hidden", LUNs: []LUNInfo{{BdevName: "b1"}},
		PGIGMaps: []PGIGMap{{PGTag: testTPGT, IGTag: 2}}}); err != nil {
		t.Fatal(err)
	}
	in := dial(t, e.addr)
	in.mustLogin(loginOpts{discovery: true})
	kvs := in.text(proto.AppendKey(nil, "SendTargets", "All"))
	want := []proto.KeyValue{{Key: "TargetName", Value: testIQN},
		{Key: "TargetAddress", Value: e.addr + ",1"}}
	if fmt.Sprint(kvs) != fmt.Sprint(want) {
		t.Fatalf("SendTargets=All answered %v, want %v", kvs, want)
	}
	in.logoutOK()

	// A SCSI command has no place on a discovery session: Reject, then the close.
	in = dial(t, e.addr)
	in.mustLogin(loginOpts{discovery: true})
	c := cmdSpec{cdb: tur()}
	in.startCmd(&c)
	in.expectReject(proto.RejectProtocolError, proto.OpSCSICommand)
	in.expectEOF("after a SCSI command on a discovery session")

	n := connect(t, e.addr, loginOpts{})
	kvs = n.text(proto.AppendKey(nil, "SendTargets", ""))
	if fmt.Sprint(kvs) != fmt.Sprint(want) {
		t.Fatalf("SendTargets= on a normal session answered %v, want %v", kvs, want)
	}
}

// logoutOK logs the session out and checks the response and the close.
func (in *ini) logoutOK() {
	in.t.Helper()
	itt := in.sendLogout(proto.LogoutCloseSession)
	p := in.recvOp(proto.OpLogoutResponse)
	r, _ := proto.DecodeLogoutResponse(&p.bhs)
	if r.ITT != itt || r.Response != proto.LogoutSuccess {
		in.t.Fatalf("Logout Response itt %#x response %v", r.ITT, r.Response)
	}
	in.expectEOF("after logout")
}

func mustMalloc(t *testing.T, e *env, name string) {
	t.Helper()
	if _, err := createMalloc(e, name); err != nil {
		t.Fatal(err)
	}
}

// TestLoginRefused: an unknown target is 0203 (not found), an initiator the node's
// initiator group does not list or denies is 0202 (authorization failure); the target
// closes the connection after the failed Login Response.
func TestLoginRefused(t *testing.T) {
	e := newEnv(t, envOpts{initiators: []string{"iqn.2026-11.dev.sluice:allowed", "!iqn.2026-11.dev.sluice:denied"}})
	for _, tc := range []struct {
		name      string
		initiator string
		target    string
		want      proto.Status
	}{
		{"unknown target", "iqn.2026-11.dev.sluice:allowed", DefaultNodeBase + "nope", proto.StatusNotFound},
		{"not listed", testInit, "", proto.StatusAuthorizationFailure},
		{"denied", "iqn.2026-11.dev.sluice:denied", "", proto.StatusAuthorizationFailure},
		{"allowed", "iqn.2026-11.dev.sluice:allowed", "", proto.StatusSuccess},
		{"allowed, name case folded", "IQN.2026-11.DEV.SLUICE:ALLOWED", strings.ToUpper(testIQN), proto.StatusSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := dial(t, e.addr)
			st := in.login(loginOpts{initiator: tc.initiator, target: tc.target})
			if st != tc.want {
				t.Fatalf("status %v, want %v", st, tc.want)
			}
			if !st.Success() {
				in.expectEOF("after a failed login")
			}
		})
	}
	// Denying wins over ANY.
	e2 := newEnv(t, envOpts{initiators: []string{"ANY", "!" + testInit}})
	in := dial(t, e2.addr)
	if st := in.login(loginOpts{}); st != proto.StatusAuthorizationFailure {
		t.Fatalf("initiator denied after ANY: status %v, want 0202", st)
	}
}

// TestLoginCHAP: a node requiring CHAP admits the initiator that answers the challenge
// with the auth group's secret and refuses (0201) a wrong secret, an unknown user, an
// initiator that skips security, and one that offers only AuthMethod=None.
func TestLoginCHAP(t *testing.T) {
	e := newEnv(t, envOpts{requireCHAP: true, secrets: []CHAPSecret{{User: "alice", Secret: "0123456789abcdef"}}})
	for _, tc := range []struct {
		name string
		o    loginOpts
		want proto.Status
	}{
		{"right secret", loginOpts{authMethod: "CHAP", chapUser: "alice", chapSecret: "0123456789abcdef"}, proto.StatusSuccess},
		{"wrong secret", loginOpts{authMethod: "CHAP", chapUser: "alice", chapSecret: "0123456789abcdeF"}, proto.StatusAuthenticationFailure},
		{"unknown user", loginOpts{authMethod: "CHAP", chapUser: "bob", chapSecret: "0123456789abcdef"}, proto.StatusAuthenticationFailure},
		{"no security stage", loginOpts{}, proto.StatusAuthenticationFailure},
		{"AuthMethod=None", loginOpts{authMethod: "None"}, proto.StatusAuthenticationFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := dial(t, e.addr)
			if st := in.login(tc.o); st != tc.want {
				t.Fatalf("status %v, want %v", st, tc.want)
			}
			if tc.want.Success() {
				in.clearUA()
				in.logoutOK()
			} else {
				in.expectEOF("after a refused login")
			}
		})
	}
	if f := e.tgt.Stats().LoginFailures; f != 4 {
		t.Errorf("%d login failures counted, want 4", f)
	}
}

// TestSessionReinstatement: a leading login with the ISID of a live session of the
// same initiator and target replaces it (RFC 7143 §6.3.5): the old session's
// connection is closed and the new session serves I/O.
func TestSessionReinstatement(t *testing.T) {
	e := newEnv(t, envOpts{})
	old := connect(t, e.addr, loginOpts{})
	data := pattern(8192, 3)
	old.writeBlocks(64, data).good(t, "write on the old session")
	oldTSIH := old.tsih

	// Several reinstatements in a row: with two reactors the old and new sessions
	// live on different ones at least once.
	for i := range 3 {
		in := dial(t, e.addr)
		in.isid = old.isid
		in.mustLogin(loginOpts{})
		if in.tsih == oldTSIH {
			t.Fatalf("round %d: the new session reuses TSIH %d", i, oldTSIH)
		}
		old.expectEOF("old session's connection after reinstatement")
		in.clearUA()
		back := make([]byte, len(data))
		in.readBlocks(64, back).good(t, "read on the new session")
		if !bytes.Equal(back, data) {
			t.Fatal("read back differs")
		}
		old, oldTSIH = in, in.tsih
	}
	waitFor(t, 5*time.Second, "one session left", func() bool { return e.tgt.Stats().Sessions == 1 })

	// A different ISID is a second session, not a reinstatement.
	other := connect(t, e.addr, loginOpts{})
	other.ping(nil)
	old.ping([]byte("still here"))
	if n := e.tgt.Stats().Sessions; n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
}
