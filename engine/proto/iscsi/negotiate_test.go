package iscsi

import (
	"errors"
	"strings"
	"testing"
)

// show renders a key block as "K=V;K=V;" for comparisons.
func show(b []byte) string { return strings.ReplaceAll(string(b), "\x00", ";") }

// negotiate runs one operational-stage block on a fresh leading-connection
// negotiator, leaving out the target's MaxRecvDataSegmentLength declaration.
func negotiate(cfg Config, st SessionType, pairs ...string) (string, Params, error) {
	n := NewNegotiator(cfg, st, nil)
	n.declared = true
	out, err := n.Negotiate(StageOperational, kv(pairs...), nil)
	return show(out), n.Params(), err
}

func cfgWith(f func(*Config)) Config {
	c := DefaultConfig()
	f(&c)
	return c
}

var (
	defCfg  = DefaultConfig()
	noImm   = cfgWith(func(c *Config) { c.ImmediateData = false; c.InitialR2T = false })
	crcOnly = cfgWith(func(c *Config) { c.HeaderDigest = DigestCRC32C })
)

// keyKindCases exercises each result function and each special answer (RFC 7143 §6.2,
// §13): pairs offered, the answer text expected.
var keyKindCases = []struct {
	name  string
	cfg   Config
	st    SessionType
	pairs []string
	want  string
}{
	// Boolean AND / OR (RFC 7143 §13.10, §13.11).
	{"and yes", defCfg, SessionNormal, []string{"ImmediateData", "Yes"}, "ImmediateData=Yes;"},
	{"and no", defCfg, SessionNormal, []string{"ImmediateData", "No"}, "ImmediateData=No;"},
	{"and target no", noImm, SessionNormal, []string{"ImmediateData", "Yes"}, "ImmediateData=No;"},
	{"or target yes", defCfg, SessionNormal, []string{"InitialR2T", "No"}, "InitialR2T=Yes;"},
	{"or target no", noImm, SessionNormal, []string{"InitialR2T", "No"}, "InitialR2T=No;"},
	{"bool case", defCfg, SessionNormal, []string{"InitialR2T", "yes"}, "InitialR2T=Reject;"},
	// Minimum / Maximum (§13.13, §13.15).
	{"min lower", defCfg, SessionNormal, []string{"MaxBurstLength", "4096"}, "MaxBurstLength=4096;"},
	{"min higher", defCfg, SessionNormal, []string{"MaxBurstLength", "16776192"},
		"MaxBurstLength=262144;"},
	{"min hex", defCfg, SessionNormal, []string{"MaxBurstLength", "0x1000"}, "MaxBurstLength=4096;"},
	{"min below range", defCfg, SessionNormal, []string{"MaxBurstLength", "511"},
		"MaxBurstLength=Reject;"},
	{"min above range", defCfg, SessionNormal, []string{"MaxBurstLength", "16777216"},
		"MaxBurstLength=Reject;"},
	{"min garbage", defCfg, SessionNormal, []string{"MaxOutstandingR2T", "many"},
		"MaxOutstandingR2T=Reject;"},
	{"max lower", defCfg, SessionNormal, []string{"DefaultTime2Wait", "0"}, "DefaultTime2Wait=2;"},
	{"max higher", defCfg, SessionNormal, []string{"DefaultTime2Wait", "10"}, "DefaultTime2Wait=10;"},
	{"max range", defCfg, SessionNormal, []string{"DefaultTime2Wait", "3601"},
		"DefaultTime2Wait=Reject;"},
	{"erl 0 only", defCfg, SessionNormal, []string{"ErrorRecoveryLevel", "2"},
		"ErrorRecoveryLevel=0;"},
	{"protocol level", defCfg, SessionNormal, []string{"iSCSIProtocolLevel", "2"},
		"iSCSIProtocolLevel=1;"},
	// Lists (§13.1, §13.23).
	{"digest first acceptable", defCfg, SessionNormal, []string{"HeaderDigest", "CRC32C,None"},
		"HeaderDigest=CRC32C;"},
	{"digest none first", defCfg, SessionNormal, []string{"DataDigest", "None,CRC32C"},
		"DataDigest=None;"},
	{"digest unknown", defCfg, SessionNormal, []string{"HeaderDigest", "MD5"}, "HeaderDigest=Reject;"},
	{"digest required", crcOnly, SessionNormal, []string{"HeaderDigest", "None"},
		"HeaderDigest=Reject;"},
	{"task reporting", defCfg, SessionNormal, []string{"TaskReporting", "ResponseFence,RFC3720"},
		"TaskReporting=RFC3720;"},
	{"task reporting none", defCfg, SessionNormal, []string{"TaskReporting", "FastAbort"},
		"TaskReporting=Reject;"},
	// Discovery sessions: no digests unless that is all that is offered
	// (sahlberg/libiscsi#239), and the keys §13 makes irrelevant.
	{"discovery digest", defCfg, SessionDiscovery, []string{"HeaderDigest", "CRC32C,None"},
		"HeaderDigest=None;"},
	{"discovery crc only", defCfg, SessionDiscovery, []string{"DataDigest", "CRC32C"},
		"DataDigest=CRC32C;"},
	{"discovery irrelevant", defCfg, SessionDiscovery,
		[]string{"MaxBurstLength", "4096", "InitialR2T", "No", "DefaultTime2Wait", "3"},
		"MaxBurstLength=Irrelevant;InitialR2T=Irrelevant;DefaultTime2Wait=3;"},
	// NotUnderstood, Reject and obsolete keys (§6.2, §13.25).
	{"unknown keys", defCfg, SessionNormal, []string{"X-com.cisco.protocol", "draft20",
		"Foo", "1", "sENDtARGETS", "aLL"},
		"X-com.cisco.protocol=NotUnderstood;Foo=NotUnderstood;sENDtARGETS=NotUnderstood;"},
	{"target-only keys", defCfg, SessionNormal, []string{"TargetAlias", "x",
		"TargetPortalGroupTag", "2", "TargetAddress", "a"}, ""},
	{"markers", defCfg, SessionNormal, []string{"IFMarker", "Yes", "OFMarker", "No",
		"OFMarkInt", "2048~8192"}, "IFMarker=No;OFMarker=No;OFMarkInt=Reject;"},
	{"iser", defCfg, SessionNormal, []string{"RDMAExtensions", "Yes",
		"TargetRecvDataSegmentLength", "8192"},
		"RDMAExtensions=No;TargetRecvDataSegmentLength=Irrelevant;"},
	{"reserved value offered", defCfg, SessionNormal, []string{"InitialR2T", "Irrelevant"},
		"InitialR2T=Reject;"},
	{"auth key in operational stage", defCfg, SessionNormal,
		[]string{"AuthMethod", "None", "CHAP_A", "5"}, "AuthMethod=Reject;CHAP_A=Reject;"},
	{"sendtargets during login", defCfg, SessionNormal, []string{"SendTargets", "All"},
		"SendTargets=Reject;"},
	// Declarations are not answered.
	{"declarations", defCfg, SessionNormal, []string{"InitiatorName", "iqn.x",
		"InitiatorAlias", "host", "SessionType", "Normal", "X#NodeArchitecture", "Linux"}, ""},
	{"mrdsl declaration", defCfg, SessionNormal, []string{"MaxRecvDataSegmentLength", "262144"}, ""},
}

func TestNegotiateKeyKinds(t *testing.T) {
	for _, c := range keyKindCases {
		got, _, err := negotiate(c.cfg, c.st, c.pairs...)
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.name, got, err, c.want)
		}
	}
}

// TestFirstBurstLength: FirstBurstLength is settled after the keys beside it, never
// exceeds MaxBurstLength, and is irrelevant when no unsolicited data can flow
// (RFC 7143 §13.14).
func TestFirstBurstLength(t *testing.T) {
	got, p, _ := negotiate(DefaultConfig(), SessionNormal,
		"FirstBurstLength", "65536", "MaxBurstLength", "8192")
	if got != "MaxBurstLength=8192;FirstBurstLength=8192;" || p.FirstBurstLength != 8192 {
		t.Fatalf("capped: %q %+v", got, p)
	}
	got, p, _ = negotiate(DefaultConfig(), SessionNormal,
		"FirstBurstLength", "4096", "InitialR2T", "Yes", "ImmediateData", "No")
	if got != "InitialR2T=Yes;ImmediateData=No;FirstBurstLength=Irrelevant;" ||
		p.FirstBurstLength != 65536 {
		t.Fatalf("irrelevant: %q %+v", got, p)
	}
	got, _, _ = negotiate(DefaultConfig(), SessionNormal, "FirstBurstLength", "1048576")
	if got != "FirstBurstLength=65536;" {
		t.Fatalf("min: %q", got)
	}
}

// TestOpenISCSIOperational replays the operational keys open-iscsi sends for a normal
// session (usr/login.c) with its default iscsid.conf values.
func TestOpenISCSIOperational(t *testing.T) {
	n := NewNegotiator(DefaultConfig(), SessionNormal, nil)
	out, err := n.Negotiate(StageOperational, kv(
		"HeaderDigest", "None", "DataDigest", "None", "DefaultTime2Wait", "2",
		"DefaultTime2Retain", "0", "IFMarker", "No", "OFMarker", "No",
		"ErrorRecoveryLevel", "0", "InitialR2T", "No", "ImmediateData", "Yes",
		"MaxBurstLength", "16776192", "FirstBurstLength", "262144",
		"MaxOutstandingR2T", "1", "MaxConnections", "1", "DataPDUInOrder", "Yes",
		"DataSequenceInOrder", "Yes", "MaxRecvDataSegmentLength", "262144"), nil)
	want := "HeaderDigest=None;DataDigest=None;DefaultTime2Wait=2;DefaultTime2Retain=0;" +
		"IFMarker=No;OFMarker=No;ErrorRecoveryLevel=0;InitialR2T=Yes;ImmediateData=Yes;" +
		"MaxBurstLength=262144;MaxOutstandingR2T=1;MaxConnections=1;DataPDUInOrder=Yes;" +
		"DataSequenceInOrder=Yes;FirstBurstLength=65536;MaxRecvDataSegmentLength=65536;"
	if err != nil || show(out) != want {
		t.Fatalf("answers\n%q\nwant\n%q (%v)", show(out), want, err)
	}
	if o, ok := n.Offers(nil); ok {
		t.Fatalf("offers after a full offer: %q", o)
	}
	p, err := n.Finish()
	if err != nil {
		t.Fatal(err)
	}
	wantP := DefaultParams()
	wantP.MaxRecvDataSegmentLength = 65536
	wantP.MaxXmitDataSegmentLength = 262144
	wantP.DefaultTime2Retain = 0
	if p != wantP {
		t.Fatalf("params\n%+v\nwant\n%+v", p, wantP)
	}
}

func TestRenegotiation(t *testing.T) {
	n := NewNegotiator(DefaultConfig(), SessionNormal, nil)
	first := kv("InitiatorName", "iqn.a", "SessionType", "Normal", "TargetName", "iqn.t")
	if _, err := n.Negotiate(StageSecurity, first, nil); err != nil {
		t.Fatal(err)
	}
	// Operational keys in the security stage are refused there and stay open.
	out, err := n.Negotiate(StageSecurity, kv("MaxBurstLength", "4096"), nil)
	if err != nil || show(out) != "MaxBurstLength=Reject;" {
		t.Fatalf("security stage: %q %v", show(out), err)
	}
	// Identical re-declarations pass (libiscsi re-sent them for years).
	out, err = n.Negotiate(StageOperational, append(first, kv("MaxBurstLength", "4096",
		"MaxRecvDataSegmentLength", "16384")...), nil)
	if err != nil || show(out) != "MaxBurstLength=4096;MaxRecvDataSegmentLength=65536;" {
		t.Fatalf("operational: %q %v", show(out), err)
	}
	// MaxRecvDataSegmentLength may be declared again; the last value holds.
	if _, err := n.Negotiate(StageOperational, kv("MaxRecvDataSegmentLength", "32768"),
		nil); err != nil || n.Params().MaxXmitDataSegmentLength != 32768 {
		t.Fatalf("re-declaration: %v %+v", err, n.Params())
	}
	for _, again := range [][]KeyValue{kv("MaxBurstLength", "4096"),
		kv("InitiatorName", "iqn.b"), kv("SessionType", "Discovery")} {
		_, err := n.Negotiate(StageOperational, again, nil)
		var lerr *LoginError
		if !errors.As(err, &lerr) || lerr.Status != StatusInitiatorError {
			t.Errorf("%v: %v, want 0200", again, err)
		}
	}
	for _, bad := range []string{"100", "16777216", "lots", "Reject"} {
		_, _, err := negotiate(DefaultConfig(), SessionNormal, "MaxRecvDataSegmentLength", bad)
		if !isStatus(err, StatusInitiatorError) && bad != "Reject" {
			t.Errorf("MaxRecvDataSegmentLength=%s: %v", bad, err)
		}
	}
	if _, err := NewNegotiator(DefaultConfig(), SessionNormal, nil).Negotiate(
		StageSecurity, kv("SessionType", "Bogus"), nil); !isStatus(err,
		StatusSessionTypeNotSupported) {
		t.Fatalf("bad SessionType: %v", err)
	}
}

func isStatus(err error, st Status) bool {
	var lerr *LoginError
	return errors.As(err, &lerr) && lerr.Status == st
}

// TestAddedConnection: leading-only keys are irrelevant on an added connection and
// keep the session's values; connection keys are negotiated afresh.
func TestAddedConnection(t *testing.T) {
	session := DefaultParams()
	session.MaxBurstLength = 131072
	session.HeaderDigest = true
	n := NewNegotiator(DefaultConfig(), SessionNormal, &session)
	n.declared = true
	out, err := n.Negotiate(StageOperational, kv("SessionType", "Normal",
		"MaxBurstLength", "4096", "HeaderDigest", "None", "MaxConnections", "2"), nil)
	if err != nil || show(out) != "MaxBurstLength=Irrelevant;HeaderDigest=None;"+
		"MaxConnections=Irrelevant;" {
		t.Fatalf("%q %v", show(out), err)
	}
	p, err := n.Finish()
	if err != nil || p.MaxBurstLength != 131072 || p.HeaderDigest {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestTargetOffers(t *testing.T) {
	cfg := cfgWith(func(c *Config) {
		c.MaxBurstLength, c.FirstBurstLength = 65536, 16384
		c.ImmediateData = false
		c.HeaderDigest = DigestCRC32C
	})
	n := NewNegotiator(cfg, SessionNormal, nil)
	if !n.needsOffers() {
		t.Fatal("needsOffers")
	}
	out, ok := n.Offers(nil)
	want := "HeaderDigest=CRC32C;MaxBurstLength=65536;FirstBurstLength=16384;ImmediateData=No;"
	if !ok || show(out) != want {
		t.Fatalf("offers %q, want %q", show(out), want)
	}
	if _, again := n.Offers(nil); again {
		t.Fatal("offers made twice")
	}
	// The initiator answers two of them; the others are reply-optional.
	if _, err := n.Negotiate(StageOperational, kv("HeaderDigest", "CRC32C",
		"MaxBurstLength", "32768"), nil); err != nil {
		t.Fatal(err)
	}
	p, err := n.Finish()
	if err != nil || !p.HeaderDigest || p.MaxBurstLength != 32768 ||
		p.FirstBurstLength != 16384 || p.ImmediateData {
		t.Fatalf("%+v %v", p, err)
	}
	// Answers that break the result function, and refusals of required offers.
	for _, c := range []struct {
		answer []string
		st     Status
	}{
		{[]string{"MaxBurstLength", "131072"}, StatusInitiatorError},
		{[]string{"ImmediateData", "Yes"}, StatusInitiatorError},
		{[]string{"HeaderDigest", "None"}, StatusInitiatorError},
	} {
		n := NewNegotiator(cfg, SessionNormal, nil)
		n.Offers(nil)
		if _, err := n.Negotiate(StageOperational, kv(c.answer...), nil); !isStatus(err, c.st) {
			t.Errorf("%v: %v", c.answer, err)
		}
	}
	n = NewNegotiator(cfg, SessionNormal, nil)
	n.Offers(nil)
	n.Negotiate(StageOperational, kv("HeaderDigest", "Reject"), nil)
	if _, err := n.Finish(); !isStatus(err, StatusInitiatorError) {
		t.Fatalf("refused digest: %v", err)
	}
	// Discovery sessions get no offers.
	if _, ok := NewNegotiator(cfg, SessionDiscovery, nil).Offers(nil); ok {
		t.Fatal("offers on a discovery session")
	}
}

func TestNegotiateText(t *testing.T) {
	n := NewNegotiator(DefaultConfig(), SessionNormal, nil)
	for i := 0; i < 2; i++ { // each Text Request is a new negotiation
		out, err := n.NegotiateText(kv("MaxRecvDataSegmentLength", "16384",
			"SendTargets", "All", "InitiatorAlias", "h", "MaxBurstLength", "512",
			"X-foo", "1", "HeaderDigest", "CRC32C"), nil)
		want := "MaxBurstLength=Reject;X-foo=NotUnderstood;HeaderDigest=Reject;"
		if err != nil || show(out) != want {
			t.Fatalf("%q %v", show(out), err)
		}
	}
	if p := n.Params(); p.MaxXmitDataSegmentLength != 16384 || p.InitiatorAlias != "h" {
		t.Fatalf("%+v", p)
	}
	// Login-only declarations out of place are ignored, not answered.
	out, err := n.NegotiateText(kv("InitiatorName", "iqn.other", "SessionType", "Normal"), nil)
	if err != nil || len(out) != 0 || n.Params().InitiatorName != "" {
		t.Fatalf("%q %v", show(out), err)
	}
	// A discovery session has no target, whatever the initiator declares.
	_, p, _ := negotiate(DefaultConfig(), SessionDiscovery, "TargetName", testIQN)
	if p.TargetName != "" {
		t.Fatalf("discovery TargetName %q", p.TargetName)
	}
}

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(*Config){
		func(c *Config) { c.MaxRecvDataSegmentLength = 511 },
		func(c *Config) { c.FirstBurstLength = c.MaxBurstLength + 1 },
		func(c *Config) { c.MaxConnections = 0 },
		func(c *Config) { c.DefaultTime2Wait = 3601 },
		func(c *Config) { c.HeaderDigest = 0 },
	} {
		c := cfgWith(f)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestKeyTable cross-checks the table against RFC 7143 §13 facts the negotiator relies
// on.
func TestKeyTable(t *testing.T) {
	for _, c := range []struct {
		name string
		kind KeyKind
		def  string
		lo   bool
		disc bool
	}{
		{"MaxRecvDataSegmentLength", KindNumDeclarative, "8192", false, false},
		{"MaxBurstLength", KindNumMin, "262144", true, true},
		{"FirstBurstLength", KindNumMin, "65536", true, true},
		{"DefaultTime2Wait", KindNumMax, "2", true, false},
		{"InitialR2T", KindBoolOr, "Yes", true, true},
		{"ImmediateData", KindBoolAnd, "Yes", true, true},
		{"HeaderDigest", KindList, "None", false, false},
		{"SessionType", KindDeclarative, "Normal", true, false},
	} {
		k, ok := Lookup(c.name)
		if !ok || k.Kind != c.kind || k.Default != c.def || k.LeadingOnly != c.lo ||
			k.DiscoveryIrrelevant != c.disc || k.Section == "" {
			t.Errorf("%s: %+v", c.name, k)
		}
	}
	if _, ok := Lookup("maxburstlength"); ok {
		t.Fatal("keys are case sensitive")
	}
}
