package crypt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

func sampleHeader(kek KEKSource) Header {
	h := Header{Generation: 7, BlockSize: 4096, Stride: 4096, DataOffset: 8192, KEK: kek}
	for i := range h.UUID {
		h.UUID[i] = byte(i + 1)
	}
	for i := range h.Nonce {
		h.Nonce[i] = byte(0xA0 + i)
	}
	for i := range h.WrappedKey {
		h.WrappedKey[i] = byte(i * 3)
	}
	if kek == KEKPassphrase {
		h.KDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 4}
		for i := range h.Salt {
			h.Salt[i] = byte(0x50 + i)
		}
	}
	return h
}

// TestHeaderRoundTrip: encode then decode gives the header back, and the record has the
// layout the format comment gives, byte for byte where it names a constant.
func TestHeaderRoundTrip(t *testing.T) {
	for _, kek := range []KEKSource{KEKKeyFile, KEKPassphrase} {
		h := sampleHeader(kek)
		rec := h.encode()
		got, err := decodeHeader(rec[:])
		if err != nil {
			t.Fatalf("%v: %v", kek, err)
		}
		if got != h {
			t.Fatalf("%v: round trip\n got %+v\nwant %+v", kek, got, h)
		}
		if string(rec[:8]) != "SLUICECR" || rec[56] != 1 || rec[57] != byte(kek) || rec[58] != 1 ||
			binary.LittleEndian.Uint64(rec[16:]) != 7 || binary.LittleEndian.Uint32(rec[24:]) != 4096 ||
			binary.LittleEndian.Uint64(rec[32:]) != 8192 || rec[40] != 1 || rec[120] != 0 || rec[121] != 3 {
			t.Fatalf("%v: record layout differs from the format comment: % x", kek, rec[:64])
		}
		if binary.LittleEndian.Uint32(rec[252:]) != crc32.Checksum(rec[:252], crc32.MakeTable(crc32.Castagnoli)) {
			t.Fatalf("%v: CRC-32C at 252 does not cover bytes 0-251", kek)
		}
	}
}

// TestHeaderRejects: each rule of the decoder, with the error class it reports.
func TestHeaderRejects(t *testing.T) {
	// edit changes a record and re-seals its CRC, so that the rule under test, not the
	// checksum, is what refuses it.
	type edit func(b []byte)
	reseal := func(b []byte) {
		binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], castagnoli))
	}
	cases := []struct {
		name   string
		kek    KEKSource
		edit   edit
		noSeal bool
		want   error
	}{
		{"blank", KEKKeyFile, func(b []byte) { clear(b) }, true, ErrNoHeader},
		{"magic", KEKKeyFile, func(b []byte) { b[0] = 's' }, false, ErrNoHeader},
		{"checksum", KEKKeyFile, func(b []byte) { b[130] ^= 1 }, true, ErrCorruptHeader},
		{"version", KEKKeyFile, func(b []byte) { b[offVersion] = 2 }, false, ErrCorruptHeader},
		{"length", KEKKeyFile, func(b []byte) { binary.LittleEndian.PutUint16(b[offLen:], 255) }, false, ErrCorruptHeader},
		{"flags", KEKKeyFile, func(b []byte) { b[offFlags] = 1 }, false, ErrCorruptHeader},
		{"reserved 59", KEKKeyFile, func(b []byte) { b[offRsvd59] = 1 }, false, ErrCorruptHeader},
		{"reserved 69", KEKKeyFile, func(b []byte) { b[offRsvd69+2] = 1 }, false, ErrCorruptHeader},
		{"reserved 116", KEKKeyFile, func(b []byte) { b[offRsvd116] = 1 }, false, ErrCorruptHeader},
		{"reserved 200", KEKKeyFile, func(b []byte) { b[offRsvd200+51] = 1 }, false, ErrCorruptHeader},
		{"cipher", KEKKeyFile, func(b []byte) { b[offCipher] = 2 }, false, ErrCorruptHeader},
		{"wrap", KEKKeyFile, func(b []byte) { b[offWrap] = 0 }, false, ErrCorruptHeader},
		{"kek source", KEKKeyFile, func(b []byte) { b[offKEK] = 3 }, false, ErrCorruptHeader},
		{"block size", KEKKeyFile, func(b []byte) { binary.LittleEndian.PutUint32(b[offBlockSize:], 1000) }, false, ErrCorruptHeader},
		{"block size small", KEKKeyFile, func(b []byte) { binary.LittleEndian.PutUint32(b[offBlockSize:], 256) }, false, ErrCorruptHeader},
		{"stride", KEKKeyFile, func(b []byte) { binary.LittleEndian.PutUint32(b[offStride:], 8192) }, false, ErrCorruptHeader},
		{"data offset", KEKKeyFile, func(b []byte) { binary.LittleEndian.PutUint64(b[offDataOffset:], 4096) }, false, ErrCorruptHeader},
		{"kdf on key file", KEKKeyFile, func(b []byte) { b[offKDFThreads] = 1 }, false, ErrCorruptHeader},
		{"salt on key file", KEKKeyFile, func(b []byte) { b[offSalt] = 1 }, false, ErrCorruptHeader},
		{"kdf time 0", KEKPassphrase, func(b []byte) { binary.LittleEndian.PutUint32(b[offKDFTime:], 0) }, false, ErrCorruptHeader},
		{"kdf time", KEKPassphrase, func(b []byte) { binary.LittleEndian.PutUint32(b[offKDFTime:], maxKDFTime+1) }, false, ErrCorruptHeader},
		{"kdf memory", KEKPassphrase, func(b []byte) { binary.LittleEndian.PutUint32(b[offKDFMemory:], maxKDFMemoryKiB+1) }, false, ErrCorruptHeader},
		{"kdf memory per lane", KEKPassphrase, func(b []byte) { binary.LittleEndian.PutUint32(b[offKDFMemory:], 31) }, false, ErrCorruptHeader},
		{"kdf threads", KEKPassphrase, func(b []byte) { b[offKDFThreads] = 0 }, false, ErrCorruptHeader},
	}
	for _, tc := range cases {
		h := sampleHeader(tc.kek)
		rec := h.encode()
		tc.edit(rec[:])
		if !tc.noSeal {
			reseal(rec[:])
		}
		got, err := decodeHeader(rec[:])
		if !errors.Is(err, tc.want) || got != (Header{}) {
			t.Errorf("%s: %+v, %v; want a zero header and %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := decodeHeader(make([]byte, headerLen-1)); !errors.Is(err, ErrNoHeader) {
		t.Errorf("short record: %v", err)
	}
}

// TestPickHeader: the valid copy with the highest generation wins; a damaged copy A
// leaves copy B, found at its stride for any block size.
func TestPickHeader(t *testing.T) {
	region := func(a, b *Header, stride int) []byte {
		r := make([]byte, 2*maxBlockSize)
		if a != nil {
			rec := a.encode()
			copy(r, rec[:])
		} else {
			copy(r, "SLUICECR damaged")
		}
		if b != nil {
			rec := b.encode()
			copy(r[stride:], rec[:])
		}
		return r
	}
	old, cur := sampleHeader(KEKKeyFile), sampleHeader(KEKPassphrase)
	old.Generation, cur.Generation = 4, 5
	for _, tc := range []struct {
		name string
		r    []byte
		want uint64
	}{
		{"A newer", region(&cur, &old, 4096), 5},
		{"B newer", region(&old, &cur, 4096), 5},
		{"A damaged", region(nil, &old, 4096), 4},
	} {
		h, err := pickHeader(tc.r)
		if err != nil || h.Generation != tc.want {
			t.Errorf("%s: generation %d, %v; want %d", tc.name, h.Generation, err, tc.want)
		}
	}
	big := sampleHeader(KEKKeyFile)
	big.BlockSize, big.Stride, big.DataOffset = 65536, 65536, 131072
	if h, err := pickHeader(region(nil, &big, 65536)); err != nil || h != big {
		t.Errorf("copy B of a 64 KiB-block volume behind a damaged A: %v", err)
	}
	// A damaged: the copy at the smallest stride is the current volume's, however high
	// the generation of a former volume's copy B further on, in what is now data.
	r := region(nil, &old, 4096)
	stale := big
	stale.Generation = 9
	rec := stale.encode()
	copy(r[65536:], rec[:])
	if h, err := pickHeader(r); err != nil || h != old {
		t.Errorf("damaged A, current B at 4 KiB, stale B at 64 KiB: generation %d, %v", h.Generation, err)
	}
	if _, err := pickHeader(region(nil, nil, 0)); !errors.Is(err, ErrCorruptHeader) {
		t.Errorf("both copies damaged: %v", err)
	}
	if _, err := pickHeader(make([]byte, 2*maxBlockSize)); !errors.Is(err, ErrNoHeader) {
		t.Errorf("blank: %v", err)
	}
}

// FuzzDecodeHeader: the decoder never panics; what it accepts re-encodes to the same 256
// bytes (every byte has one meaning) and passes the header rules; what it refuses comes
// with a zero Header. Seeds: testdata/fuzz/FuzzDecodeHeader and the records below.
func FuzzDecodeHeader(f *testing.F) {
	for _, kek := range []KEKSource{KEKKeyFile, KEKPassphrase} {
		h := sampleHeader(kek)
		rec := h.encode()
		f.Add(rec[:])
	}
	f.Add([]byte("SLUICECR"))
	f.Add(make([]byte, headerLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil {
			if h != (Header{}) {
				t.Fatalf("error %v with a non-zero header %+v", err, h)
			}
			if !errors.Is(err, ErrNoHeader) && !errors.Is(err, ErrCorruptHeader) {
				t.Fatalf("error %v of neither class", err)
			}
			return
		}
		if err := h.check(); err != nil {
			t.Fatalf("accepted a header that breaks the rules: %v", err)
		}
		rec := h.encode()
		if !bytes.Equal(rec[:], b[:headerLen]) {
			t.Fatalf("decode→encode differs:\n in % x\nout % x", b[:headerLen], rec[:])
		}
		again, err := decodeHeader(rec[:])
		if err != nil || again != h {
			t.Fatalf("decode→encode→decode: %+v, %v", again, err)
		}
	})
}
