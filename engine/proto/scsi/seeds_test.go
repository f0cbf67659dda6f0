package scsi

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestGenSeeds rewrites the hand-made seed corpus under testdata/fuzz: CDBs and parameter
// lists as libiscsi's iscsi-test-cu, Linux and sg3_utils send them. Crashers that
// `go test -fuzz` saves there are kept beside these files.
// Run: SLUICE_GEN_SEEDS=1 go test -run GenSeeds ./engine/proto/scsi/
func TestGenSeeds(t *testing.T) {
	if os.Getenv("SLUICE_GEN_SEEDS") == "" {
		t.Skip("set SLUICE_GEN_SEEDS=1 to regenerate the seed corpus")
	}
	genCDBSeeds(t)
	genSenseSeeds(t)
	genModeSelectSeeds(t)
	genUnmapSeeds(t)
	genPROutSeeds(t)
	genTransportIDSeeds(t)
	genLUNSeeds(t)
}

// seedFile writes one corpus file in the "go test fuzz v1" format.
func seedFile(t *testing.T, target, name string, args ...any) {
	var buf bytes.Buffer
	buf.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			buf.WriteString("[]byte(" + strconv.Quote(string(v)) + ")\n")
		case uint8:
			fmt.Fprintf(&buf, "byte('\\x%02x')\n", v)
		case bool:
			fmt.Fprintf(&buf, "bool(%v)\n", v)
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

func seedName(s string) string {
	return strings.NewReplacer(" ", "-", "(", "", ")", "", "/", "-").Replace(s)
}

func genCDBSeeds(t *testing.T) {
	for _, tc := range cdbCases {
		seedFile(t, "FuzzDecodeCDB", seedName(tc.name), tc.b)
	}
	for name, b := range map[string][]byte{
		"naca-read10":            bhs(0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x04),
		"inquiry-evpd0-page":     bhs(0x12, 0, 1, 1, 0, 0),
		"write-same-anchor-only": bhs(0x93, 0x10),
		"rsoc-all-rctd":          bhs(0xA3, 0x0C, 0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0),
		"sanitize-overwrite":     bhs(0x48, 0x01, 0, 0, 0, 0, 0, 0, 0x24, 0),
		"prin-sa-1f":             bhs(0x5E, 0x1F),
		"read32-no-ahs":          bhs(0x7F, 0, 0, 0, 0, 0, 0, 0x18, 0, 9),
	} {
		seedFile(t, "FuzzDecodeCDB", name, b)
	}
}

func genSenseSeeds(t *testing.T) {
	for name, s := range map[string]Sense{
		"miscompare": {Key: SenseKeyMiscompare, Code: ASCMiscompareDuringVerify,
			InfoValid: true, Info: 27},
		"invalid-field": InvalidFieldInCDB(1, 4).Sense,
		"ua-power-on":   {Key: SenseKeyUnitAttention, Code: ASCPowerOnResetOrBusDeviceReset},
		"not-ready-prog": {Key: SenseKeyNotReady, Code: ASCLUBecomingReady,
			Specific: ProgressIndication(9)},
		"deferred-medium": {Key: SenseKeyMediumError, Code: ASCWriteError, Deferred: true},
	} {
		for _, desc := range []bool{false, true} {
			b := make([]byte, SenseMaxLen)
			n := s.Put(b, desc)
			suffix := "-fixed"
			if desc {
				suffix = "-descriptor"
			}
			seedFile(t, "FuzzDecodeSense", name+suffix, b[:n])
		}
	}
	seedFile(t, "FuzzDecodeSense", "descriptor-overrun",
		[]byte{0x72, 5, 0x24, 0, 0, 0, 0, 4, 0x02, 0x06, 0, 0})
}

func genModeSelectSeeds(t *testing.T) {
	ctl := sluiceModePages().Find(ModePageControl, 0).Current
	swp := append([]byte(nil), ctl...)
	swp[2] |= 0x08
	seedFile(t, "FuzzDecodeModeSelect", "libiscsi-set-swp", modeSelect6(ModePageControl, swp), false)
	seedFile(t, "FuzzDecodeModeSelect", "caching-wce-off",
		modeSelect6(ModePageCaching, CachingPage{}.Bytes()), false)
	l := ModeSelectList{Ten: true, LongLBA: true, HasBlockDescriptor: true, Blocks: 1 << 33,
		BlockLength: 512, Pages: []ModeSelectPage{{Code: ModePageControl, Params: ctl},
			{Code: ModePageControl, SPF: true, Subpage: 1, Params: make([]byte, 0x1C)}}}
	seedFile(t, "FuzzDecodeModeSelect", "ten-long-descriptor", l.Append(nil), true)
	l = ModeSelectList{HasBlockDescriptor: true, Blocks: 0, BlockLength: 512}
	seedFile(t, "FuzzDecodeModeSelect", "block-descriptor-only", l.Append(nil), false)
	seedFile(t, "FuzzDecodeModeSelect", "page-cut", []byte{0, 0, 0, 0, 0x0A, 0x0A, 0}, false)
}

func genUnmapSeeds(t *testing.T) {
	seedFile(t, "FuzzDecodeUnmap", "libiscsi-one", AppendUnmap(nil, []UnmapDescriptor{{0, 8}}))
	seedFile(t, "FuzzDecodeUnmap", "libiscsi-none", AppendUnmap(nil, nil))
	var many []UnmapDescriptor
	for i := uint64(0); i < 20; i++ {
		many = append(many, UnmapDescriptor{LBA: i * 8, Blocks: 1})
	}
	seedFile(t, "FuzzDecodeUnmap", "twenty", AppendUnmap(nil, many))
	seedFile(t, "FuzzDecodeUnmap", "partial", AppendUnmap(nil, many[:2])[:30])
	seedFile(t, "FuzzDecodeUnmap", "short", []byte{0, 6, 0, 0})
}

func genPROutSeeds(t *testing.T) {
	ign := PROutParams{ServiceActionKey: 0x1234567890}
	seedFile(t, "FuzzDecodePROut", "libiscsi-register-and-ignore", uint8(PROutRegisterAndIgnore),
		ign.Append(PROutRegisterAndIgnore, nil))
	res := PROutParams{ReservationKey: 0x1234567890}
	seedFile(t, "FuzzDecodePROut", "reserve", uint8(PROutReserve), res.Append(PROutReserve, nil))
	aptpl := PROutParams{ServiceActionKey: 7, APTPL: true, AllTgPt: true}
	seedFile(t, "FuzzDecodePROut", "register-aptpl", uint8(PROutRegister),
		aptpl.Append(PROutRegister, nil))
	spec := PROutParams{ServiceActionKey: 9, SpecIPT: true, TransportIDs: []TransportID{
		{Name: "iqn.1994-05.com.redhat:client", ISID: 0x23d000001, HasISID: true},
		{Name: "iqn.1991-05.com.microsoft:node2"}}}
	seedFile(t, "FuzzDecodePROut", "spec-i-pt", uint8(PROutRegister), spec.Append(PROutRegister, nil))
	move := PROutParams{ReservationKey: 1, ServiceActionKey: 2, RelativeTargetPort: 2,
		TransportIDs: []TransportID{{Name: "iqn.x", ISID: 1, HasISID: true}}}
	seedFile(t, "FuzzDecodePROut", "register-and-move", uint8(PROutRegisterAndMove),
		move.Append(PROutRegisterAndMove, nil))
}

func genTransportIDSeeds(t *testing.T) {
	for name, id := range map[string]TransportID{
		"port":   {Name: "iqn.2007-10.com.example:host1", ISID: 0x23d000001, HasISID: true},
		"device": {Name: "iqn.1991-05.com.microsoft:node2"},
		"eui":    {Name: "eui.02004567A425678D"},
	} {
		seedFile(t, "FuzzDecodeTransportID", name, id.Append(nil))
	}
	seedFile(t, "FuzzDecodeTransportID", "upper-case-isid",
		[]byte("\x45\x00\x00\x14iqn.a,I,0X1aB\x00\x00\x00\x00\x00\x00\x00"))
	seedFile(t, "FuzzDecodeTransportID", "fibre-channel", append([]byte{0, 0, 0, 20},
		make([]byte, 20)...))
}

func genLUNSeeds(t *testing.T) {
	for name, b := range map[string][]byte{
		"lun0":       {0, 0, 0, 0, 0, 0, 0, 0},
		"peripheral": {0, 5, 0, 0, 0, 0, 0, 0},
		"flat":       {0x41, 0x2C, 0, 0, 0, 0, 0, 0},
		"two-level":  {0, 1, 0, 2, 0, 0, 0, 0},
		"wlun":       {0xC1, 0x01, 0, 0, 0, 0, 0, 0},
	} {
		seedFile(t, "FuzzDecodeLUN", name, b)
	}
}
