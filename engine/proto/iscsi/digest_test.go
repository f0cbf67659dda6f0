package iscsi

import (
	"bytes"
	"errors"
	"testing"
)

// TestCRC32CVectors checks the CRC32C examples of RFC 3720 Appendix B.4 (kept by RFC
// 7143), an independent published source: the digests of 32 zero bytes, 32 0xff bytes,
// 32 incrementing and 32 decrementing bytes, and of a SCSI Read(10) Command BHS, each
// with its wire bytes (least significant first).
func TestCRC32CVectors(t *testing.T) {
	inc := make([]byte, 32)
	dec := make([]byte, 32)
	for i := range inc {
		inc[i] = byte(i)
		dec[i] = byte(31 - i)
	}
	read10 := []byte{
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	}
	for _, c := range []struct {
		name string
		data []byte
		crc  uint32
		wire []byte
	}{
		{"zeros", make([]byte, 32), 0x8a9136aa, []byte{0xaa, 0x36, 0x91, 0x8a}},
		{"ones", bytes.Repeat([]byte{0xff}, 32), 0x62a8ab43, []byte{0x43, 0xab, 0xa8, 0x62}},
		{"incrementing", inc, 0x46dd794e, []byte{0x4e, 0x79, 0xdd, 0x46}},
		{"decrementing", dec, 0x113fdb5c, []byte{0x5c, 0xdb, 0x3f, 0x11}},
		{"read10 bhs", read10, 0xd9963a56, []byte{0x56, 0x3a, 0x96, 0xd9}},
	} {
		got := CRC32C(c.data)
		var w [4]byte
		PutDigest(w[:], got)
		if got != c.crc || !bytes.Equal(w[:], c.wire) || Digest(c.wire) != c.crc {
			t.Errorf("%s: crc %#x wire %x, want %#x %x", c.name, got, w, c.crc, c.wire)
		}
	}
	var b BHS
	copy(b[:], read10)
	if HeaderDigest(&b, nil) != 0xd9963a56 {
		t.Fatal("HeaderDigest over the BHS")
	}
}

// TestDigestStreaming: a digest computed piece by piece, over any split, equals the
// one-shot digest, padding included.
func TestDigestStreaming(t *testing.T) {
	data := make([]byte, 1027)
	for i := range data {
		data[i] = byte(i * 7)
	}
	want := DataDigest(data)
	if want != CRC32C(append(append([]byte{}, data...), 0)) { // 1027 + 1 byte pad
		t.Fatal("DataDigest does not cover the zero padding")
	}
	for _, cut := range []int{0, 1, 3, 512, 1026, 1027} {
		crc := CRC32CUpdate(CRC32CUpdate(0, data[:cut]), data[cut:])
		if got := DataDigestPad(crc, uint32(len(data))); got != want {
			t.Errorf("cut %d: %#x, want %#x", cut, got, want)
		}
	}
	// The header digest covers BHS then AHS.
	var b BHS
	b[0] = 1
	ahs := []byte{0, 5, 2, 0, 1, 2, 3, 4}
	if HeaderDigest(&b, ahs) != CRC32C(append(b[:], ahs...)) {
		t.Fatal("HeaderDigest over BHS+AHS")
	}
}

func TestDigestErrors(t *testing.T) {
	var b BHS
	hd := HeaderDigest(&b, nil)
	if CheckHeaderDigest(&b, nil, hd) != nil {
		t.Fatal("good header digest refused")
	}
	var pe *PDUError
	if err := CheckHeaderDigest(&b, nil, hd^1); !errors.As(err, &pe) || !pe.Fatal() {
		t.Fatalf("header digest error %v must drop the connection", err)
	}
	err := CheckDataDigest(1, 2)
	if !errors.As(err, &pe) || pe.Fatal() || pe.Reason != RejectDataDigest {
		t.Fatalf("data digest error %v must be rejected with 0x02", err)
	}
	if pe.Error() == "" {
		t.Fatal("empty message")
	}
}

func TestPadLen(t *testing.T) {
	for n, want := range []uint32{0, 3, 2, 1, 0, 3} {
		if PadLen(uint32(n)) != want {
			t.Errorf("PadLen(%d) = %d", n, PadLen(uint32(n)))
		}
	}
}
