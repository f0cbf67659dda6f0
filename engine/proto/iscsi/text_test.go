package iscsi

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func kv(pairs ...string) []KeyValue {
	var out []KeyValue
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, KeyValue{pairs[i], pairs[i+1]})
	}
	return out
}

func block(pairs ...string) []byte { return AppendText(nil, kv(pairs...)) }

func TestParseText(t *testing.T) {
	long := strings.Repeat("a", 255)
	for _, c := range []struct {
		name string
		in   []byte
		want []KeyValue
		err  error
	}{
		{"empty", nil, nil, nil},
		{"two pairs", []byte("InitiatorName=iqn.1993-08.org.debian:01:abc\x00SessionType=Normal\x00"),
			kv("InitiatorName", "iqn.1993-08.org.debian:01:abc", "SessionType", "Normal"), nil},
		{"empty value", []byte("SendTargets=\x00"), kv("SendTargets", ""), nil},
		{"value with =", []byte("X-a=b=c\x00"), kv("X-a", "b=c"), nil},
		{"extra NULs", []byte("\x00A=1\x00\x00\x00B=2\x00\x00"), kv("A", "1", "B", "2"), nil},
		{"max key", []byte(strings.Repeat("K", 63) + "=v\x00"), kv(strings.Repeat("K", 63), "v"), nil},
		{"max value", []byte("A=" + long + "\x00"), kv("A", long), nil},
		{"large CHAP_C", []byte("CHAP_C=0x" + strings.Repeat("ab", 1024) + "\x00"),
			kv("CHAP_C", "0x"+strings.Repeat("ab", 1024)), nil},
		{"unterminated", []byte("A=1\x00B=2"), nil, ErrTextSyntax},
		{"no equals", []byte("A\x00"), nil, ErrTextSyntax},
		{"empty key", []byte("=1\x00"), nil, ErrTextSyntax},
		{"long key", []byte(strings.Repeat("K", 64) + "=v\x00"), nil, ErrKeyTooLong},
		{"long value", []byte("A=" + long + "b\x00"), nil, ErrValueTooLong},
		{"long CHAP_R", []byte("CHAP_R=" + strings.Repeat("a", 8193) + "\x00"), nil,
			ErrValueTooLong},
		{"duplicate", []byte("A=1\x00B=2\x00A=1\x00"), nil, ErrDuplicateKey},
		{"duplicate far", append(manyPairs(40), "K3a=x\x00"...), nil, ErrDuplicateKey},
	} {
		got, err := ParseText(c.in)
		if !errors.Is(err, c.err) || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %q %v, want %q %v", c.name, got, err, c.want, c.err)
		}
	}
}

func TestValues(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "8192": 8192, "0x2000": 8192,
		"0X00ff": 255, "007": 7, "18446744073709551615": 1<<64 - 1} {
		if got, err := ParseNumber(in); err != nil || got != want {
			t.Errorf("ParseNumber(%q) = %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0x", "-1", "+1", "1e3", "0b11", "12a",
		"18446744073709551616", "0x1_0", " 1"} {
		if _, err := ParseNumber(in); !errors.Is(err, ErrBadValue) {
			t.Errorf("ParseNumber(%q) accepted", in)
		}
	}
	if v, err := ParseBool("Yes"); !v || err != nil {
		t.Fatal("Yes")
	}
	for _, in := range []string{"yes", "YES", "", "1"} {
		if _, err := ParseBool(in); err == nil {
			t.Errorf("ParseBool(%q) accepted: values are case sensitive", in)
		}
	}
	want := []byte{0x01, 0xab, 0xcd}
	for _, in := range []string{"0x01abcd", "0X1abcd", "0x1ABCD", "0bAavN", "0BAavN"} {
		if got, err := ParseBinary(in, 16); err != nil || !bytes.Equal(got, want) {
			t.Errorf("ParseBinary(%q) = %x %v", in, got, err)
		}
	}
	if got, err := ParseBinary("0bAQID", 16); err != nil || !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Errorf("base64 %x %v", got, err)
	}
	if got, err := ParseBinary("0bAQI=", 16); err != nil || !bytes.Equal(got, []byte{1, 2}) {
		t.Errorf("padded base64 %x %v", got, err)
	}
	for _, in := range []string{"", "0x", "0b", "12", "0xzz", "0b!!", "0c12", "0x0102"} {
		if _, err := ParseBinary(in, 1); err == nil {
			t.Errorf("ParseBinary(%q) accepted", in)
		}
	}
	if s := string(AppendHex([]byte("C="), []byte{0, 0xff})); s != "C=0x00ff" {
		t.Fatal(s)
	}
	if s := string(AppendKeyNumber(nil, "N", 42)); s != "N=42\x00" {
		t.Fatal(s)
	}
}

func TestListValues(t *testing.T) {
	var got []string
	for v := range ListValues("CRC32C,,None") {
		got = append(got, v)
	}
	if !reflect.DeepEqual(got, []string{"CRC32C", "", "None"}) {
		t.Fatal(got)
	}
	for v := range ListValues("8,7,6,5") {
		if v != "8" {
			t.Fatal("no early stop")
		}
		break
	}
}

func TestAssembler(t *testing.T) {
	a := NewAssembler(0)
	full := block("InitiatorName", "iqn.x", "SessionType", "Discovery")
	// A key=value pair may be split anywhere across PDUs (RFC 7143 §6.1).
	for cut := 0; cut <= len(full); cut++ {
		if _, done, err := a.Add(full[:cut], true); done || err != nil || !a.Pending() {
			t.Fatalf("cut %d: first piece done=%v %v", cut, done, err)
		}
		got, done, err := a.Add(full[cut:], false)
		if !done || err != nil || !bytes.Equal(got, full) || a.Pending() {
			t.Fatalf("cut %d: %q %v %v", cut, got, done, err)
		}
	}
	// A single PDU without C comes back as is.
	if got, done, _ := a.Add(full, false); !done || &got[0] != &full[0] {
		t.Fatal("single segment copied")
	}
	small := NewAssembler(10)
	if _, _, err := small.Add(make([]byte, 6), true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := small.Add(make([]byte, 6), false); !errors.Is(err, ErrTextTooLong) {
		t.Fatalf("bound: %v", err)
	}
	if small.Pending() {
		t.Fatal("error must reset the sequence")
	}
}

func TestSplitText(t *testing.T) {
	var resp []byte
	for i := 0; i < 100; i++ {
		resp = AppendKey(resp, "TargetName", "iqn.2024-01.io.sluice:disk"+strings.Repeat("x", i%40))
		resp = AppendTargetAddress(resp, "192.0.2.1", 3260, 1)
	}
	for _, max := range []int{1, 7, 64, 512, 8192, len(resp)} {
		var joined []byte
		rest := resp
		for pieces := 0; len(rest) > 0; pieces++ {
			var seg []byte
			seg, rest = SplitText(rest, max)
			if len(seg) == 0 || len(seg) > max {
				t.Fatalf("max %d: piece of %d bytes", max, len(seg))
			}
			// Pieces end on a pair boundary whenever a whole pair fits.
			if max >= 100 && len(rest) > 0 && seg[len(seg)-1] != 0 {
				t.Fatalf("max %d: piece cuts a pair", max)
			}
			joined = append(joined, seg...)
		}
		if !bytes.Equal(joined, resp) {
			t.Fatalf("max %d: pieces do not join back", max)
		}
	}
}

// manyPairs builds n distinct pairs K0=v..K<n-1>=v.
func manyPairs(n int) []byte {
	var b []byte
	for i := range n {
		b = AppendKey(b, "K"+string(rune('0'+i%10))+string(rune('a'+i/10)), "v")
	}
	return b
}
