package iscsi

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestGenSeeds rewrites the hand-made seed corpus under testdata/fuzz: PDUs, key blocks
// and login conversations as open-iscsi and libiscsi send them, plus malformed cases.
// Crashers that `go test -fuzz` saves there are kept beside these files. Run:
// SLUICE_GEN_SEEDS=1 go test -run GenSeeds ./engine/proto/iscsi/
func TestGenSeeds(t *testing.T) {
	if os.Getenv("SLUICE_GEN_SEEDS") == "" {
		t.Skip("set SLUICE_GEN_SEEDS=1 to regenerate the seed corpus")
	}
	genBHSSeeds(t)
	genFramingSeeds(t)
	genTextSeeds(t)
	genNegotiateSeeds(t)
	genLoginSeeds(t)
}

// seedFile writes one corpus file in the "go test fuzz v1" format.
func seedFile(t *testing.T, target, name string, args ...any) {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			buf.WriteString("[]byte(" + strconv.Quote(string(v)) + ")\n")
		case string:
			buf.WriteString("string(" + strconv.Quote(v) + ")\n")
		case uint8:
			fmt.Fprintf(&buf, "byte('\\x%02x')\n", v)
		case uint16:
			fmt.Fprintf(&buf, "uint16(%d)\n", v)
		case uint32:
			fmt.Fprintf(&buf, "uint32(%d)\n", v)
		default:
			t.Fatalf("type %T", a)
		}
	}
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// enc encodes a typed PDU header.
func enc(put func(*BHS)) []byte {
	var b BHS
	put(&b)
	return b[:]
}

func genBHSSeeds(t *testing.T) {
	seeds := map[string][]byte{
		"scsi-read10": enc((&SCSICommand{Final: true, Read: true, Attr: TaskSimple, ITT: 0x14,
			ExpectedDataTransferLength: 0x400, CmdSN: 0x14, ExpStatSN: 0x18,
			CDB: [16]byte{0x28, 0, 0, 0, 0, 0, 0, 0, 2}}).Put),
		"scsi-write-immediate": enc((&SCSICommand{Final: true, Write: true, Attr: TaskSimple,
			DataSegmentLength: 4096, ITT: 1, ExpectedDataTransferLength: 8192, CmdSN: 1,
			CDB: [16]byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 16}}).Put),
		"scsi-response-sense": enc((&SCSIResponse{Status: 2, DataSegmentLength: 20, ITT: 1,
			StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 34, Underflow: true, ResidualCount: 512}).Put),
		"data-in-status": enc((&DataIn{Final: true, HasStatus: true, DataSegmentLength: 4096,
			ITT: 1, TTT: ReservedTag, StatSN: 2, ExpCmdSN: 3, MaxCmdSN: 34}).Put),
		"data-out": enc((&DataOut{Final: true, DataSegmentLength: 8192, ITT: 1, TTT: 5,
			BufferOffset: 65536, DataSN: 1}).Put),
		"r2t": enc((&R2T{ITT: 1, TTT: 5, R2TSN: 1, BufferOffset: 65536,
			DesiredDataTransferLength: 262144}).Put),
		"nop-out-ping": enc((&NOPOut{Immediate: true, ITT: 9, TTT: ReservedTag}).Put),
		"nop-in-ping":  enc((&NOPIn{ITT: ReservedTag, TTT: 3}).Put),
		"tmf-abort": enc((&TMFRequest{Immediate: true, Function: TMFAbortTask, ITT: 2,
			ReferencedTaskTag: 1}).Put),
		"tmf-rsp": enc((&TMFResponse{Response: TMFTaskNotExist, ITT: 2}).Put),
		"text-sendtargets": enc((&TextRequest{Immediate: true, Final: true,
			DataSegmentLength: 16, ITT: 3, TTT: ReservedTag}).Put),
		"text-rsp-continue": enc((&TextResponse{Continue: true, DataSegmentLength: 8192,
			ITT: 3, TTT: 0x100}).Put),
		"logout":       enc((&LogoutRequest{Immediate: true, ITT: 4}).Put),
		"logout-rsp":   enc((&LogoutResponse{ITT: 4, Time2Retain: 20}).Put),
		"snack-status": enc((&SNACKRequest{Type: SNACKStatus, ITT: ReservedTag, BegRun: 3}).Put),
		"async-logout": enc((&AsyncMessage{Event: AsyncRequestLogout, Parameter3: 10}).Put),
		"reject":       enc((&Reject{Reason: RejectProtocolError, DataSegmentLength: 48}).Put),
		"login-req": enc((&LoginRequest{Transit: true, NSG: StageOperational,
			DataSegmentLength: 120, ISID: testISID, ITT: 7}).Put),
		"login-rsp-fail": enc((&LoginResponse{Status: StatusAuthenticationFailure,
			ISID: testISID, ITT: 7}).Put),
		"reserved-opcode": append([]byte{0x07, 0xff}, make([]byte, 46)...),
		"short":           {0x01, 0x80},
	}
	for name, b := range seeds {
		seedFile(t, "FuzzBHS", name, b)
	}
}

func genFramingSeeds(t *testing.T) {
	withLen := func(op Opcode, ahs uint8, dsl uint32) []byte {
		var b BHS
		b[0] = byte(op)
		b.SetLengths(ahs, dsl)
		return b[:]
	}
	seedFile(t, "FuzzLayout", "cmd-ahs-digests", withLen(OpSCSICommand, 5, 4097), uint8(6),
		uint32(65536))
	seedFile(t, "FuzzLayout", "login-8192", withLen(OpLoginRequest, 0, 8192), uint8(0), uint32(0))
	seedFile(t, "FuzzLayout", "data-out-over", withLen(OpDataOut, 0, 65537), uint8(6),
		uint32(65536))
	seedFile(t, "FuzzLayout", "data-in-initiator", withLen(OpDataIn, 0, 3), uint8(7), uint32(8192))
	seedFile(t, "FuzzLayout", "target-opcode", withLen(OpR2T, 0, 0), uint8(0), uint32(0))

	cdb := AppendExtendedCDBAHS(nil, bytes.Repeat([]byte{0x7f}, 16))
	seedFile(t, "FuzzCommandAHS", "ext-cdb-bidi", AppendBidiReadAHS(cdb, 4096))
	seedFile(t, "FuzzCommandAHS", "ext-cdb-odd", AppendExtendedCDBAHS(nil, []byte{1, 2, 3}))
	seedFile(t, "FuzzCommandAHS", "dup-bidi", append(AppendBidiReadAHS(nil, 1),
		AppendBidiReadAHS(nil, 2)...))
	seedFile(t, "FuzzCommandAHS", "overrun", []byte{0, 9, 1, 0, 1, 2})

	sense := []byte{0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0}
	seedFile(t, "FuzzSenseData", "illegal-request", AppendSenseData(nil, sense))
	seedFile(t, "FuzzSenseData", "with-response-data", append(AppendSenseData(nil, sense), 1, 2))
	seedFile(t, "FuzzSenseData", "bad-length", []byte{0, 40, 0x70})
}

// openISCSIFirst is open-iscsi's first Login Request text (usr/login.c).
var openISCSIFirst = block("InitiatorName", testInit, "InitiatorAlias", "host1",
	"TargetName", testIQN, "SessionType", "Normal", "AuthMethod", "CHAP,None")

func genTextSeeds(t *testing.T) {
	var st []byte
	st = AppendKey(st, "TargetName", testIQN)
	st = AppendTargetAddress(st, "192.0.2.1", 3260, 1)
	st = AppendTargetAddress(st, "2001:db8::1", 3260, 1)
	for name, b := range map[string][]byte{
		"open-iscsi-first": openISCSIFirst,
		"open-iscsi-op":    block(openISCSIOp...),
		"chap-response": block("CHAP_N", "alice", "CHAP_R",
			"0x02d212c30d6cf08d6017333bc8cad741", "CHAP_I", "119",
			"CHAP_C", "0bqqqqqqqqqqqqqqqqqqqqqg=="),
		"sendtargets-rsp": st,
		"extra-nuls":      []byte("\x00A=1\x00\x00B=\x00\x00"),
		"unterminated":    []byte("A=1\x00B"),
		"duplicate":       block("A", "1", "A", "2"),
		"no-equals":       []byte("Key\x00"),
	} {
		seedFile(t, "FuzzParseText", name, b)
	}
	for i, v := range []string{"0x1000", "8192", "0bAavN", "0XABC", "All", "", testIQN,
		"eui.02004567A425678D", "naa.52004567BA64678D5200", "8,7,6,5", "CRC32C,None",
		"18446744073709551616", "Alle"} {
		seedFile(t, "FuzzValues", "v"+strconv.Itoa(i), v)
	}
	seedFile(t, "FuzzAssembler", "split-pair", openISCSIFirst, uint16(13), uint16(40),
		uint16(0))
	seedFile(t, "FuzzAssembler", "over-bound", openISCSIFirst, uint16(1), uint16(2), uint16(64))
	seedFile(t, "FuzzAssembler", "tiny-pieces", st, uint16(0), uint16(0), uint16(7))
}

func genNegotiateSeeds(t *testing.T) {
	const (
		security    = 0 << 2
		operational = 1 << 2
		ffp         = 2 << 2
		discovery   = 1 << 1
		added       = 8
		strict      = 16
	)
	for name, c := range map[string]struct {
		text  []byte
		flags uint8
	}{
		"open-iscsi-op":     {block(openISCSIOp...), operational},
		"open-iscsi-strict": {block(openISCSIOp...), operational | strict},
		"open-iscsi-added":  {block(openISCSIOp...), operational | added},
		"security-first":    {openISCSIFirst, security | 0x60},
		"discovery": {block("InitiatorName", testInit, "SessionType", "Discovery",
			"HeaderDigest", "CRC32C,None", "MaxBurstLength", "512"), operational | discovery},
		"fbl-irrelevant": {block("FirstBurstLength", "4096", "InitialR2T", "Yes",
			"ImmediateData", "No"), operational},
		"text-ffp": {block("SendTargets", "All", "MaxRecvDataSegmentLength", "16384",
			"HeaderDigest", "CRC32C"), ffp},
		"obsolete": {block("IFMarker", "Yes", "OFMarkInt", "1~65535", "RDMAExtensions",
			"Yes", "X-com.cisco.protocol", "draft20"), operational},
		"bad-values": {block("MaxBurstLength", "0x", "InitialR2T", "Reject",
			"SessionType", "Boot", "ErrorRecoveryLevel", "3"), operational},
	} {
		seedFile(t, "FuzzNegotiate", name, c.text, c.flags)
	}
}

func genLoginSeeds(t *testing.T) {
	seq := func(steps ...[]byte) []byte { return bytes.Join(steps, nil) }
	sec := func(nsg Stage, pairs ...string) []byte {
		return loginSeed(req(StageSecurity, nsg), block(pairs...))
	}
	op := func(pairs ...string) []byte {
		return loginSeed(req(StageOperational, StageFullFeature), block(pairs...))
	}
	// chapRand gives CHAP_I 0x40 and the challenge 0x41..0x50 for MD5.
	chal := make([]byte, 16)
	for i := range chal {
		chal[i] = byte(0x41 + i)
	}
	r := string(AppendHex(nil, CHAPResponse(CHAPMD5, 0x40, []byte(testSecret), chal)))
	seedFile(t, "FuzzLogin", "open-iscsi-none", uint8(0), seq(
		sec(StageOperational, "InitiatorName", testInit, "TargetName", testIQN,
			"SessionType", "Normal", "AuthMethod", "None"),
		op(openISCSIOp...)))
	seedFile(t, "FuzzLogin", "libiscsi-chap", uint8(1), seq(
		sec(StageOperational, "InitiatorName", testInit, "TargetName", testIQN,
			"SessionType", "Normal", "AuthMethod", "CHAP,None"),
		sec(StageSecurity, "CHAP_A", "5"),
		sec(StageOperational, "CHAP_N", "alice", "CHAP_R", r),
		op(openISCSIOp...)))
	chal32 := make([]byte, 32)
	for i := range chal32 {
		chal32[i] = byte(0x41 + i)
	}
	r3 := string(AppendHex(nil, CHAPResponse(CHAPSHA3256, 0x40, []byte(testSecret), chal32)))
	seedFile(t, "FuzzLogin", "mutual-chap", uint8(3), seq(
		sec(StageOperational, "InitiatorName", testInit, "TargetName", testIQN,
			"AuthMethod", "CHAP"),
		sec(StageSecurity, "CHAP_A", "8,7,6,5"),
		sec(StageOperational, "CHAP_N", "alice", "CHAP_R", r3, "CHAP_I", "7",
			"CHAP_C", "0x0102030405060708090a0b0c0d0e0f10"),
		op("MaxRecvDataSegmentLength", "262144")))
	seedFile(t, "FuzzLogin", "discovery", uint8(0), sec(StageFullFeature,
		"InitiatorName", testInit, "SessionType", "Discovery", "AuthMethod", "None"))
	seedFile(t, "FuzzLogin", "missing-name", uint8(0), op("TargetName", testIQN))
	seedFile(t, "FuzzLogin", "continued", uint8(0), seq(
		loginSeed(&LoginRequest{Continue: true, ISID: testISID, ITT: 7, CID: 1},
			openISCSIFirst[:20]),
		loginSeed(req(StageSecurity, StageOperational), openISCSIFirst[20:])))
}
