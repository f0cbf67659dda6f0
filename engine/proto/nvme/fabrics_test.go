package nvme

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestValidateNQN(t *testing.T) {
	for _, tc := range []struct {
		nqn string
		ok  bool
	}{
		{DiscoveryNQN, true},
		{"nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", true},
		{"nqn.2014-08.org.nvmexpress:uuid:F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6", true},
		{"nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf", false},
		{"nqn.2014-08.org.nvmexpress:uuid:f81d4fae_7dec-11d0-a765-00a0c91e6bf6", false},
		{"nqn.2014-08.org.nvmexpress:uuid:g81d4fae-7dec-11d0-a765-00a0c91e6bf6", false},
		{"nqn.2016-06.io.spdk:cnode1", true},
		{"nqn.2014-08.com.vmware:nvme:esx-host-01", true},
		{"nqn.2014-08.org.nvmexpress:NVMf:uuid:0000", true},
		{"nqn.2024-01.dev.sluice:vol-é", true},
		{"nqn.2014-08.com.3par:x", true},
		{"nqn.2016-06.io.spdk", false},      // no ':'
		{"nqn.2016-06.io.spdk:", false},     // nothing after ':'
		{"nqn.2016-6.io.spdk:x", false},     // month digits
		{"nqn.20a6-06.io.spdk:x", false},    // year digits
		{"NQN.2016-06.io.spdk:x", false},    // case
		{"iqn.2016-06.io.spdk:x", false},    // prefix
		{"nqn.2016-06.io..spdk:x", false},   // empty label
		{"nqn.2016-06.io.-spdk:x", false},   // leading hyphen
		{"nqn.2016-06.io.spdk-:x", false},   // trailing hyphen
		{"nqn.2016-06.io.sp_dk:x", false},   // underscore
		{"nqn.2016-06.:x", false},           // no domain
		{"nqn.2016-06.io.spdk:\x00", false}, // NUL
		{"nqn.2016-06.io.spdk:\xff", false}, // not UTF-8
		{"", false},
		{"nqn.2016-06.io." + strings.Repeat("a", 64) + ":x", false}, // label > 63
		{"nqn.2016-06.io.spdk:" + strings.Repeat("x", NQNMaxLen-20), true},
		{"nqn.2016-06.io.spdk:" + strings.Repeat("x", NQNMaxLen-19), false},
	} {
		err := ValidateNQN(tc.nqn)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateNQN(%q) = %v, want ok=%v", tc.nqn, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidNQN) {
			t.Errorf("%q: %v does not wrap ErrInvalidNQN", tc.nqn, err)
		}
	}
}

func linuxConnectData() ConnectData {
	d := ConnectData{
		CNTLID:  CNTLIDDynamic,
		SubNQN:  "nqn.2016-06.io.spdk:cnode1",
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
	}
	copy(d.HostID[:], []byte{0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0,
		0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b, 0xf6})
	return d
}

func TestConnectDataRoundTrip(t *testing.T) {
	d := linuxConnectData()
	var b [ConnectDataLen]byte
	for i := range b {
		b[i] = 0xAA
	}
	if err := d.MarshalTo(&b); err != nil {
		t.Fatal(err)
	}
	if b[16] != 0xFF || b[17] != 0xFF || b[18] != 0 || b[256] != 'n' ||
		b[256+len(d.SubNQN)] != 0 || b[512] != 'n' || b[1023] != 0 || b[0] != 0xf8 {
		t.Fatalf("layout %x", b[:32])
	}
	got, err := DecodeConnectData(b[:])
	if err != nil || got != d {
		t.Fatalf("DecodeConnectData = %+v, %v", got, err)
	}
}

func TestConnectDataErrors(t *testing.T) {
	d := linuxConnectData()
	var good [ConnectDataLen]byte
	if err := d.MarshalTo(&good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mut  func(b []byte)
		ipo  uint16
	}{
		{"subnqn unterminated", func(b []byte) {
			for i := 256; i < 512; i++ {
				b[i] = 'a'
			}
		}, 256},
		{"subnqn 224 bytes", func(b []byte) {
			for i := 256; i < 256+224; i++ {
				b[i] = 'a'
			}
		}, 256},
		{"hostnqn unterminated", func(b []byte) {
			for i := 512; i < 768; i++ {
				b[i] = 'a'
			}
		}, 512},
	} {
		b := good
		tc.mut(b[:])
		got, err := DecodeConnectData(b[:])
		var ce *ConnectDataError
		if !errors.As(err, &ce) || ce.IPO != tc.ipo {
			t.Errorf("%s: %v, want IPO %d", tc.name, err, tc.ipo)
		}
		if got != (ConnectData{}) {
			t.Errorf("%s: non-zero value", tc.name)
		}
	}
	if _, err := DecodeConnectData(good[:1023]); err != ErrShortBuffer {
		t.Error("short")
	}
	// What SPDK's target and nvmet accept, the decoder accepts: an empty host NQN (an
	// anonymous host, as spdk_nvme_perf sends), any format, a 223-byte name.
	for _, tc := range []struct {
		name string
		mut  func(b []byte)
		host string
	}{
		{"hostnqn empty", func(b []byte) { clear(b[512:768]) }, ""},
		{"hostnqn free form", func(b []byte) { clear(b[512:768]); copy(b[512:], "host-a") }, "host-a"},
		{"hostnqn 223 bytes", func(b []byte) {
			clear(b[512:768])
			copy(b[512:], bytes.Repeat([]byte{'h'}, 223))
		}, string(bytes.Repeat([]byte{'h'}, 223))},
	} {
		b := good
		tc.mut(b[:])
		got, err := DecodeConnectData(b[:])
		if err != nil || got.HostNQN != tc.host || got.SubNQN != d.SubNQN {
			t.Errorf("%s: %+v, %v", tc.name, got, err)
		}
	}
	anon := d
	anon.HostNQN = ""
	if err := anon.MarshalTo(&good); err != nil {
		t.Errorf("MarshalTo with an empty host NQN (anonymous host): %v", err)
	}
	bad := d
	bad.HostNQN = "host"
	var b [ConnectDataLen]byte
	var ce *ConnectDataError
	if err := bad.MarshalTo(&b); !errors.As(err, &ce) || ce.IPO != 512 ||
		!errors.Is(err, ErrInvalidNQN) {
		t.Errorf("MarshalTo: %v", err)
	}
	bad = d
	bad.SubNQN = ""
	if err := bad.MarshalTo(&b); !errors.As(err, &ce) || ce.IPO != 256 {
		t.Errorf("MarshalTo: %v", err)
	}
}

func TestNQNField(t *testing.T) {
	var f [NQNFieldLen]byte
	PutNQN(f[:], DiscoveryNQN)
	if NQNString(f[:]) != DiscoveryNQN {
		t.Fatal(NQNString(f[:]))
	}
	full := [4]byte{'a', 'b', 'c', 'd'}
	if NQNString(full[:]) != "abcd" {
		t.Fatal("unterminated")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("PutNQN did not panic on overflow")
		}
	}()
	PutNQN(full[:], "abcd")
}

// TestCAP packs the CAP SPDK advertises (mqes 127, cqr, to 30 s, css NVM) and checks
// the bit positions.
func TestCAP(t *testing.T) {
	c := CAP{MQES: 127, CQR: true, TO: 60, CSS: CSSNVM, MPSMIN: 0, MPSMAX: 0}
	v := c.Value()
	if v != 127|1<<16|60<<24|1<<37 {
		t.Fatalf("%#x", v)
	}
	full := CAP{MQES: 0xFFFF, CQR: true, AMS: 3, TO: 0xFF, DSTRD: 0xF, NSSRS: true, CSS: 0xFF,
		BPS: true, CPS: 3, MPSMIN: 0xF, MPSMAX: 0xF, PMRS: true, CMBS: true, NSSS: true,
		CRMS: 3}
	if full.Value() != 0x1FFF_FFFF_FF07_FFFF || DecodeCAP(full.Value()) != full {
		t.Fatalf("%#x %+v", full.Value(), DecodeCAP(full.Value()))
	}
	if DecodeCAP(v) != c {
		t.Fatal(DecodeCAP(v))
	}
	if n, ok := PropertySize(PropCAP); !ok || n != 8 {
		t.Fatal("CAP size")
	}
	if n, ok := PropertySize(PropCSTS); !ok || n != 4 {
		t.Fatal("CSTS size")
	}
	if _, ok := PropertySize(PropINTMS); ok {
		t.Fatal("INTMS over fabrics")
	}
}

func TestCCCSTSVS(t *testing.T) {
	// Linux: EN=1, IOSQES=6, IOCQES=4 (plus CSS=0, MPS=0, AMS=0).
	cc := DecodeCC(0x00460001)
	if !cc.EN || cc.IOSQES != 6 || cc.IOCQES != 4 || cc.SHN != SHNNone || cc.CSS != 0 {
		t.Fatalf("%+v", cc)
	}
	if cc.Value() != 0x00460001 {
		t.Fatalf("%#x", cc.Value())
	}
	sh := CC{EN: true, CSS: 7, MPS: 0xF, AMS: 7, SHN: SHNAbrupt, IOSQES: 6, IOCQES: 4,
		CRIME: true}
	if sh.Value() != 0x0146_BFF1 || DecodeCC(sh.Value()) != sh {
		t.Fatalf("%#x", sh.Value())
	}
	st := CSTS{RDY: true, SHST: SHSTComplete}
	if st.Value() != 0x9 || DecodeCSTS(0x9) != st {
		t.Fatalf("%#x", st.Value())
	}
	all := CSTS{RDY: true, CFS: true, SHST: 3, NSSRO: true, PP: true, ST: true}
	if all.Value() != 0x7F || DecodeCSTS(0x7F) != all {
		t.Fatal("CSTS all")
	}
	if Version(1, 3, 0) != VS13 || VS13 != 0x00010300 || VS20 != 0x00020000 ||
		Version(1, 4, 1) != VS14|1 {
		t.Fatal("VS")
	}
}

func TestFabricsErrorStrings(t *testing.T) {
	err := ValidateNQN("nqn.2016-06.io.spdk")
	if err == nil || err.Error() !=
		`nqn "nqn.2016-06.io.spdk": no ':' after the reverse domain: invalid nqn` {
		t.Fatalf("%v", err)
	}
	long := "x" + strings.Repeat("y", 300)
	if err := ValidateNQN(long); !strings.Contains(err.Error(), "...") {
		t.Fatalf("long nqn not shortened: %v", err)
	}
	ce := &ConnectDataError{IPO: 512, Err: errNQNNotTerminated}
	if ce.Error() != "connect data @512: nqn field has no NUL within its first 224 bytes" {
		t.Fatal(ce.Error())
	}
}
