package iscsi

import (
	"bytes"
	"strings"
	"testing"
)

const (
	testIQN    = "iqn.2024-01.io.sluice:disk1"
	testInit   = "iqn.1993-08.org.debian:01:abcdef"
	testSecret = "alice-secret-1"
)

// fakeHooks is the target side of the login tests: one target, a discovery policy,
// and records of what the login asked.
type fakeHooks struct {
	policy      LoginPolicy
	discovery   LoginPolicy
	status      Status // Authorize's answer for the target, 0 = success
	join        Status
	session     Params
	tsih        uint16
	authorized  []LoginIdentity
	established []Params
}

func newHooks() *fakeHooks {
	cfg := DefaultConfig()
	cfg.TargetPortalGroupTag = 1
	return &fakeHooks{
		policy:    LoginPolicy{Config: cfg, Auth: AuthNone},
		discovery: LoginPolicy{Config: cfg, Auth: AuthNone},
		tsih:      0x0a0b,
	}
}

func (h *fakeHooks) withCHAP(mutual bool) *fakeHooks {
	h.policy.Auth = AuthCHAP
	h.policy.CHAPSecret = secrets("alice", []byte(testSecret))
	if mutual {
		h.policy.CHAP = CHAPPolicy{TargetUser: testIQN, TargetSecret: []byte(
			"target-secret-34"), MutualRequired: true}
	}
	return h
}

func (h *fakeHooks) Authorize(id LoginIdentity) (LoginPolicy, Status) {
	h.authorized = append(h.authorized, id)
	if id.SessionType == SessionDiscovery {
		return h.discovery, StatusSuccess
	}
	if id.TargetName != testIQN {
		return LoginPolicy{}, StatusNotFound
	}
	if h.status != 0 {
		return LoginPolicy{RedirectAddress: "192.0.2.9:3260,1"}, h.status
	}
	return h.policy, StatusSuccess
}

func (h *fakeHooks) JoinSession(id LoginIdentity) (Params, Status) {
	return h.session, h.join
}

func (h *fakeHooks) Establish(id LoginIdentity, p Params) (uint16, Status) {
	h.established = append(h.established, p)
	if id.TSIH != 0 {
		return id.TSIH, StatusSuccess
	}
	return h.tsih, StatusSuccess
}

var testISID = ISID{0x00, 0x02, 0x3d, 0x00, 0x00, 0x01}

// req builds a Login Request header: csg, then nsg with T set when nsg > csg.
func req(csg, nsg Stage) *LoginRequest {
	return &LoginRequest{Transit: nsg > csg, CSG: csg, NSG: nsg, ISID: testISID, ITT: 7,
		CID: 1}
}

// expect checks a reply's status, T/CSG/NSG and text.
func expect(t *testing.T, r LoginReply, st Status, transit bool, csg, nsg Stage,
	text string) {
	t.Helper()
	h := r.Header
	if h.Status != st || h.Transit != transit || h.CSG != csg || h.NSG != nsg ||
		show(r.Data) != text || h.DataSegmentLength != uint32(len(r.Data)) ||
		h.ISID != testISID || h.ITT != 7 || h.VersionActive != 0 {
		t.Fatalf("reply %+v data %q (%v)\nwant status %s T=%v CSG=%d NSG=%d data %q",
			h, show(r.Data), r.Err, st, transit, csg, nsg, text)
	}
}

var openISCSIOp = []string{"HeaderDigest", "None", "DataDigest", "None",
	"DefaultTime2Wait", "2", "DefaultTime2Retain", "0", "IFMarker", "No", "OFMarker", "No",
	"ErrorRecoveryLevel", "0", "InitialR2T", "No", "ImmediateData", "Yes",
	"MaxBurstLength", "16776192", "FirstBurstLength", "262144", "MaxOutstandingR2T", "1",
	"MaxConnections", "1", "DataPDUInOrder", "Yes", "DataSequenceInOrder", "Yes",
	"MaxRecvDataSegmentLength", "262144"}

const openISCSIOpAnswers = "HeaderDigest=None;DataDigest=None;DefaultTime2Wait=2;" +
	"DefaultTime2Retain=0;IFMarker=No;OFMarker=No;ErrorRecoveryLevel=0;InitialR2T=Yes;" +
	"ImmediateData=Yes;MaxBurstLength=262144;MaxOutstandingR2T=1;MaxConnections=1;" +
	"DataPDUInOrder=Yes;DataSequenceInOrder=Yes;FirstBurstLength=65536;" +
	"MaxRecvDataSegmentLength=65536;"

// TestLoginOpenISCSI replays an open-iscsi normal session login without CHAP: a
// security stage with AuthMethod=None, then the operational keys of usr/login.c.
func TestLoginOpenISCSI(t *testing.T) {
	h := newHooks()
	l := NewLogin(h, chapRand())
	r := l.Step(req(StageSecurity, StageOperational), block("InitiatorName", testInit,
		"InitiatorAlias", "host1", "TargetName", testIQN, "SessionType", "Normal",
		"AuthMethod", "None", "TargetPortalGroupTag", "7"))
	expect(t, r, StatusSuccess, true, StageSecurity, StageOperational,
		"TargetPortalGroupTag=1;AuthMethod=None;")
	if _, err := ParseText(r.Data); err != nil {
		t.Fatal(err)
	}
	if l.State() != LoginStateOperational || r.Done || r.Failed {
		t.Fatalf("state %s", l.State())
	}
	r = l.Step(req(StageOperational, StageFullFeature), block(openISCSIOp...))
	expect(t, r, StatusSuccess, true, StageOperational, StageFullFeature, openISCSIOpAnswers)
	if !r.Done || r.Header.TSIH != 0x0a0b || l.State() != LoginStateFullFeature {
		t.Fatalf("final %+v", r)
	}
	if r.Params.MaxXmitDataSegmentLength != 262144 || r.Params.InitiatorAlias != "host1" ||
		r.Params.TargetName != testIQN || len(h.established) != 1 {
		t.Fatalf("params %+v", r.Params)
	}
	id := l.Identity()
	if id.InitiatorName != testInit || id.ISID != testISID || id.CID != 1 {
		t.Fatalf("identity %+v", id)
	}
	// Nothing more is accepted.
	if r := l.Step(req(StageOperational, StageFullFeature), nil); !r.Failed {
		t.Fatal("step after login")
	}
}

// TestLoginLibiscsi: libiscsi without CHAP starts in the operational stage and asks
// for full feature phase at once.
func TestLoginLibiscsi(t *testing.T) {
	l := NewLogin(newHooks(), chapRand())
	r := l.Step(req(StageOperational, StageFullFeature), block("InitiatorName", testInit,
		"TargetName", testIQN, "SessionType", "Normal", "HeaderDigest", "None,CRC32C",
		"DataDigest", "None", "InitialR2T", "No", "ImmediateData", "Yes",
		"MaxBurstLength", "262144", "FirstBurstLength", "262144",
		"MaxRecvDataSegmentLength", "262144"))
	expect(t, r, StatusSuccess, true, StageOperational, StageFullFeature,
		"TargetPortalGroupTag=1;HeaderDigest=None;DataDigest=None;InitialR2T=Yes;"+
			"ImmediateData=Yes;MaxBurstLength=262144;FirstBurstLength=65536;"+
			"MaxRecvDataSegmentLength=65536;")
	if !r.Done {
		t.Fatal("not done")
	}
}

// chapLogin runs the libiscsi CHAP sequence up to the challenge and returns the login
// and the identifier and challenge the target sent.
func chapLogin(t *testing.T, h *fakeHooks, algs string) (*Login, byte, []byte) {
	t.Helper()
	l := NewLogin(h, chapRand())
	r := l.Step(req(StageSecurity, StageOperational), block("InitiatorName", testInit,
		"TargetName", testIQN, "SessionType", "Normal", "AuthMethod", "CHAP,None"))
	// T=1 asked, but CHAP is not done: the target stays in the stage.
	expect(t, r, StatusSuccess, false, StageSecurity, 0,
		"TargetPortalGroupTag=1;AuthMethod=CHAP;")
	r = l.Step(req(StageSecurity, StageSecurity), block("CHAP_A", algs))
	kvs, _ := ParseText(r.Data)
	if r.Failed || len(kvs) != 3 || r.Header.Transit {
		t.Fatalf("challenge %q %v", show(r.Data), r.Err)
	}
	id, _ := ParseNumber(kvs[1].Value)
	chal, _ := ParseBinary(kvs[2].Value, MaxCHAPChallengeLen)
	return l, byte(id), chal
}

func TestLoginCHAP(t *testing.T) {
	h := newHooks().withCHAP(false)
	l, id, chal := chapLogin(t, h, "5")
	resp := CHAPResponse(CHAPMD5, id, []byte(testSecret), chal)
	r := l.Step(req(StageSecurity, StageOperational), block("CHAP_N", "alice",
		"CHAP_R", string(AppendHex(nil, resp))))
	expect(t, r, StatusSuccess, true, StageSecurity, StageOperational, "")
	r = l.Step(req(StageOperational, StageFullFeature), block(openISCSIOp...))
	if !r.Done || r.Params.AuthMethod != AuthCHAP {
		t.Fatalf("final %+v", r)
	}
}

func TestLoginMutualCHAP(t *testing.T) {
	h := newHooks().withCHAP(true)
	l, id, chal := chapLogin(t, h, "8,7,6,5")
	resp := CHAPResponse(CHAPSHA3256, id, []byte(testSecret), chal)
	ichal := bytes.Repeat([]byte{0xaa}, 16)
	r := l.Step(req(StageSecurity, StageOperational), block("CHAP_N", "alice",
		"CHAP_R", string(AppendHex(nil, resp)), "CHAP_I", "119",
		"CHAP_C", string(AppendHex(nil, ichal))))
	want := CHAPResponse(CHAPSHA3256, 119, []byte("target-secret-34"), ichal)
	expect(t, r, StatusSuccess, true, StageSecurity, StageOperational,
		"CHAP_N="+testIQN+";CHAP_R="+string(AppendHex(nil, want))+";")
}

func TestLoginFailures(t *testing.T) {
	full := []string{"InitiatorName", testInit, "TargetName", testIQN}
	for _, c := range []struct {
		name  string
		hooks *fakeHooks
		req   *LoginRequest
		pairs []string
		st    Status
		text  string
	}{
		{"missing InitiatorName", newHooks(), req(StageSecurity, StageOperational),
			[]string{"TargetName", testIQN, "AuthMethod", "None"}, StatusMissingParameter, ""},
		{"missing TargetName", newHooks(), req(StageSecurity, StageOperational),
			[]string{"InitiatorName", testInit, "AuthMethod", "None"}, StatusMissingParameter, ""},
		{"unknown target", newHooks(), req(StageSecurity, StageOperational),
			[]string{"InitiatorName", testInit, "TargetName", "iqn.2024-01.io.sluice:nope"},
			StatusNotFound, ""},
		{"bad session type", newHooks(), req(StageSecurity, StageOperational),
			append(full, "SessionType", "Boot"), StatusSessionTypeNotSupported, ""},
		{"redirect", &fakeHooks{status: StatusTargetMovedTemporarily},
			req(StageSecurity, StageOperational), full, StatusTargetMovedTemporarily,
			"TargetAddress=192.0.2.9:3260,1;"},
		{"chap required, none offered", newHooks().withCHAP(false),
			req(StageSecurity, StageOperational), append(full, "AuthMethod", "None"),
			StatusAuthenticationFailure, "TargetPortalGroupTag=1;AuthMethod=Reject;"},
		{"chap required, security skipped", newHooks().withCHAP(false),
			req(StageOperational, StageFullFeature), full, StatusAuthenticationFailure,
			"TargetPortalGroupTag=1;"},
		{"chap required, no AuthMethod", newHooks().withCHAP(false),
			req(StageSecurity, StageOperational), full, StatusAuthenticationFailure,
			"TargetPortalGroupTag=1;"},
		{"version", newHooks(), &LoginRequest{VersionMin: 1, VersionMax: 2, ISID: testISID,
			ITT: 7}, full, StatusUnsupportedVersion, ""},
		{"first in full feature", newHooks(), req(StageFullFeature, StageFullFeature), full,
			StatusInitiatorError, ""},
		{"reserved NSG", newHooks(), &LoginRequest{Transit: true, CSG: StageSecurity, NSG: 2,
			ISID: testISID, ITT: 7}, full, StatusInitiatorError, ""},
		{"T and C", newHooks(), &LoginRequest{Transit: true, Continue: true,
			CSG: StageSecurity, NSG: StageOperational, ISID: testISID, ITT: 7}, full,
			StatusInitiatorError, ""},
		{"backwards", newHooks(), &LoginRequest{Transit: true, CSG: StageOperational,
			NSG: StageSecurity, ISID: testISID, ITT: 7}, full, StatusInitiatorError, ""},
		{"bad MaxRecvDataSegmentLength", newHooks(), req(StageOperational, StageFullFeature),
			append(full, "MaxRecvDataSegmentLength", "100"), StatusInitiatorError,
			"TargetPortalGroupTag=1;"},
		{"bad text", newHooks(), req(StageSecurity, StageOperational),
			[]string{"InitiatorName", testInit, "InitiatorName", testInit},
			StatusInitiatorError, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := NewLogin(c.hooks, chapRand())
			r := l.Step(c.req, block(c.pairs...))
			if !r.Failed || r.Done || r.Header.Status != c.st || show(r.Data) != c.text ||
				r.Header.Transit || r.Header.CSG != 0 || r.Header.NSG != 0 ||
				l.State() != LoginStateFailed || r.Err == nil {
				t.Fatalf("%+v %q %v", r.Header, show(r.Data), r.Err)
			}
		})
	}
}

func TestLoginWrongSecret(t *testing.T) {
	l, id, chal := chapLogin(t, newHooks().withCHAP(false), "5")
	resp := CHAPResponse(CHAPMD5, id, []byte("wrong-secret-1"), chal)
	r := l.Step(req(StageSecurity, StageOperational), block("CHAP_N", "alice",
		"CHAP_R", string(AppendHex(nil, resp))))
	if !r.Failed || r.Header.Status != StatusAuthenticationFailure {
		t.Fatalf("%+v %v", r.Header, r.Err)
	}
}

// TestLoginDiscovery: open-iscsi's discovery login goes from the security stage
// straight to full feature phase; no TargetPortalGroupTag is declared.
func TestLoginDiscovery(t *testing.T) {
	h := newHooks()
	l := NewLogin(h, chapRand())
	r := l.Step(req(StageSecurity, StageFullFeature), block("InitiatorName", testInit,
		"SessionType", "Discovery", "AuthMethod", "None"))
	expect(t, r, StatusSuccess, true, StageSecurity, StageFullFeature, "AuthMethod=None;")
	if !r.Done || r.Params.SessionType != SessionDiscovery ||
		r.Params.MaxRecvDataSegmentLength != 8192 || h.authorized[0].TargetName != "" {
		t.Fatalf("%+v", r)
	}
	// With operational keys: digests stay off unless only CRC32C is offered.
	l = NewLogin(h, chapRand())
	r = l.Step(req(StageOperational, StageFullFeature), block("InitiatorName", testInit,
		"SessionType", "Discovery", "HeaderDigest", "CRC32C,None", "MaxBurstLength", "512",
		"MaxRecvDataSegmentLength", "32768"))
	expect(t, r, StatusSuccess, true, StageOperational, StageFullFeature,
		"HeaderDigest=None;MaxBurstLength=Irrelevant;MaxRecvDataSegmentLength=65536;")
}

func TestLoginTransitRules(t *testing.T) {
	l := NewLogin(newHooks(), chapRand())
	r := l.Step(req(StageSecurity, StageSecurity), block("InitiatorName", testInit,
		"TargetName", testIQN, "AuthMethod", "None"))
	expect(t, r, StatusSuccess, false, StageSecurity, 0,
		"TargetPortalGroupTag=1;AuthMethod=None;")
	// The initiator must stay in the stage the target left it in.
	r = l.Step(req(StageOperational, StageFullFeature), nil)
	if !r.Failed || r.Header.Status != StatusInitiatorError {
		t.Fatalf("CSG mismatch: %+v", r.Header)
	}
	// ISID must not change.
	l = NewLogin(newHooks(), chapRand())
	l.Step(req(StageSecurity, StageSecurity), block("InitiatorName", testInit,
		"TargetName", testIQN, "AuthMethod", "None"))
	q := req(StageSecurity, StageOperational)
	q.ISID[5] = 9
	if r := l.Step(q, nil); !r.Failed {
		t.Fatal("ISID change accepted")
	}
}

// TestLoginContinuation: a first request split over two PDUs with the C bit gets an
// empty response for the first piece (RFC 7143 §11.12.2).
func TestLoginContinuation(t *testing.T) {
	l := NewLogin(newHooks(), chapRand())
	text := block("InitiatorName", testInit, "TargetName", testIQN, "AuthMethod", "None")
	q := req(StageSecurity, StageSecurity)
	q.Continue = true
	r := l.Step(q, text[:10])
	expect(t, r, StatusSuccess, false, StageSecurity, 0, "")
	r = l.Step(req(StageSecurity, StageOperational), text[10:])
	expect(t, r, StatusSuccess, true, StageSecurity, StageOperational,
		"TargetPortalGroupTag=1;AuthMethod=None;")
}

// TestLoginResponseContinuation: a response above 8192 bytes goes out in C=1 pieces
// that the initiator fetches with empty requests; the last piece carries T and Done.
func TestLoginResponseContinuation(t *testing.T) {
	l := NewLogin(newHooks(), chapRand())
	l.Step(req(StageOperational, StageOperational), block("InitiatorName", testInit,
		"TargetName", testIQN))
	big := AppendKey(nil, "X-big", strings.Repeat("v", 200))
	for len(big) < 3*loginMaxData {
		big = append(big, big...)
	}
	final := LoginReply{Header: l.header(req(StageOperational, StageFullFeature), true,
		StageFullFeature), Done: true}
	r := l.withData(final, big)
	var got []byte
	for i := 0; ; i++ {
		got = append(got, r.Data...)
		if len(r.Data) > loginMaxData || r.Header.DataSegmentLength != uint32(len(r.Data)) {
			t.Fatalf("piece %d: %d bytes", i, len(r.Data))
		}
		if !r.Header.Continue {
			break
		}
		if r.Done || r.Header.Transit {
			t.Fatalf("piece %d carries T or Done", i)
		}
		r = l.Step(req(StageOperational, StageOperational), nil)
	}
	if !r.Done || !r.Header.Transit || !bytes.Equal(got, big) ||
		l.State() != LoginStateFullFeature {
		t.Fatalf("last piece %+v, %d of %d bytes, %s", r.Header, len(got), len(big),
			l.State())
	}
}

// TestLoginAddConnection: TSIH != 0 joins the session; leading-only keys are
// irrelevant and no TargetPortalGroupTag is declared.
func TestLoginAddConnection(t *testing.T) {
	h := newHooks()
	h.session = DefaultParams()
	h.session.MaxBurstLength = 131072
	l := NewLogin(h, chapRand())
	q := req(StageOperational, StageFullFeature)
	q.TSIH, q.CID = 0x0a0b, 2
	r := l.Step(q, block("InitiatorName", testInit, "TargetName", testIQN,
		"SessionType", "Normal", "MaxBurstLength", "4096", "HeaderDigest", "CRC32C"))
	if !r.Done || r.Header.TSIH != 0x0a0b || r.Params.MaxBurstLength != 131072 ||
		!r.Params.HeaderDigest || show(r.Data) != "MaxBurstLength=Irrelevant;"+
		"HeaderDigest=CRC32C;MaxRecvDataSegmentLength=65536;" {
		t.Fatalf("%+v %q %v", r.Header, show(r.Data), r.Err)
	}
	h.join = StatusSessionDoesNotExist
	r = NewLogin(h, chapRand()).Step(q, block("InitiatorName", testInit,
		"TargetName", testIQN))
	if !r.Failed || r.Header.Status != StatusSessionDoesNotExist {
		t.Fatalf("%+v", r.Header)
	}
}

// TestLoginTargetOffers: when the initiator leaves keys open that the target cannot
// run with at their defaults, the target offers them and transits only afterwards.
func TestLoginTargetOffers(t *testing.T) {
	h := newHooks()
	h.policy.Config.MaxBurstLength, h.policy.Config.FirstBurstLength = 65536, 65536
	l := NewLogin(h, chapRand())
	r := l.Step(req(StageSecurity, StageFullFeature), block("InitiatorName", testInit,
		"TargetName", testIQN, "AuthMethod", "None"))
	// Straight to full feature phase is refused: the offers need the operational stage.
	expect(t, r, StatusSuccess, true, StageSecurity, StageOperational,
		"TargetPortalGroupTag=1;AuthMethod=None;")
	r = l.Step(req(StageOperational, StageFullFeature), nil)
	expect(t, r, StatusSuccess, false, StageOperational, 0,
		"MaxRecvDataSegmentLength=65536;MaxBurstLength=65536;")
	r = l.Step(req(StageOperational, StageFullFeature), block("MaxBurstLength", "32768"))
	expect(t, r, StatusSuccess, true, StageOperational, StageFullFeature, "")
	if !r.Done || r.Params.MaxBurstLength != 32768 || r.Params.FirstBurstLength != 32768 {
		t.Fatalf("%+v", r.Params)
	}
}
