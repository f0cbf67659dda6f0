package nvme

import (
	"bytes"
	"testing"
)

// RFC 3720 §B.4 CRC32C test vectors; the CRC goes on the wire little-endian.
func TestCRC32CVectors(t *testing.T) {
	zeros := make([]byte, 32)
	ones := bytes.Repeat([]byte{0xFF}, 32)
	inc := make([]byte, 32)
	dec := make([]byte, 32)
	for i := range inc {
		inc[i] = byte(i)
		dec[i] = byte(31 - i)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		crc  uint32
		wire []byte
	}{
		{"32 zeros", zeros, 0x8a9136aa, []byte{0xaa, 0x36, 0x91, 0x8a}},
		{"32 0xff", ones, 0x62a8ab43, []byte{0x43, 0xab, 0xa8, 0x62}},
		{"0..31", inc, 0x46dd794e, []byte{0x4e, 0x79, 0xdd, 0x46}},
		{"31..0", dec, 0x113fdb5c, []byte{0x5c, 0xdb, 0x3f, 0x11}},
	} {
		if got := CRC32C(tc.in); got != tc.crc {
			t.Errorf("%s: CRC32C = %#08x, want %#08x", tc.name, got, tc.crc)
		}
		var w [4]byte
		PutDigest(w[:], tc.crc)
		if !bytes.Equal(w[:], tc.wire) || Digest(w[:]) != tc.crc {
			t.Errorf("%s: wire %x, want %x", tc.name, w, tc.wire)
		}
	}
}

// TestCRC32CIncremental: data arriving in pieces digests the same as in one piece.
func TestCRC32CIncremental(t *testing.T) {
	data := make([]byte, 9000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	want := CRC32C(data)
	for _, cut := range []int{1, 7, 512, 4096, 8999} {
		crc := uint32(0)
		for off := 0; off < len(data); off += cut {
			crc = CRC32CUpdate(crc, data[off:min(off+cut, len(data))])
		}
		if crc != want {
			t.Errorf("pieces of %d: %#x, want %#x", cut, crc, want)
		}
	}
	if CRC32CUpdate(0, nil) != 0 || CRC32C(nil) != 0 {
		t.Error("empty input")
	}
}

func TestHeaderDigest(t *testing.T) {
	hdr := make([]byte, 28)
	ch := FrameHeader(PDUTypeCapsuleResp, 0, 0, LayoutParams{HDGST: true})
	ch.Put(hdr)
	CapsuleCQE(hdr).Fill(1, 0, 0, 0, 0, StatusSuccess)
	SetHeaderDigest(hdr, 24)
	if Digest(hdr[24:]) != CRC32C(hdr[:24]) || CheckHeaderDigest(hdr, 24) != nil {
		t.Fatal("digest not written")
	}
	hdr[10] ^= 1
	if CheckHeaderDigest(hdr, 24) != errHeaderDigest {
		t.Fatal("corruption not detected")
	}
}
