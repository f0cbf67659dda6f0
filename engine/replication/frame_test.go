package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func sampleFrames() []Frame {
	uuid := bytes.Repeat([]byte{0xab}, 16)
	return []Frame{
		{Type: FrameHello, Text: "p1", Flags: uint32(LinkData), Seq: ProtocolVersion},
		{Type: FrameVolumeOpen, Volume: "vol0", UUID: uuid, Size: 64 << 20, BlockSize: 512,
			Epoch: 0xdeadbeef, Flags: FlagEncrypted | FlagResync},
		{Type: FrameVolumeState, Volume: "vol0", Epoch: 7, Flags: FlagComplete},
		{Type: FrameWrite, Seq: 42, Offset: 1 << 30, Flags: FlagFUA, Data: bytes.Repeat([]byte{1, 2, 3}, 1000)},
		{Type: FrameAck, Seq: 42},
		{Type: FrameAck, Seq: 43, Status: 1},
		{Type: FrameFlush, Seq: 44},
		{Type: FrameSyncStart, Seq: 45, Epoch: 7, Flags: FlagFull},
		{Type: FrameSyncDone, Seq: 46, Epoch: 7},
		{Type: FrameKeyOffer, Volume: "vol0", UUID: uuid, Flags: 1, Data: bytes.Repeat([]byte{9}, 32)},
		{Type: FrameKeyAck, Volume: "vol0"},
		{Type: FrameError, Status: 22, Text: "no such volume"},
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range sampleFrames() {
		b, err := AppendFrame(nil, &f)
		if err != nil {
			t.Fatalf("%v: %v", f.Type, err)
		}
		if n := binary.BigEndian.Uint32(b); int(n) != len(b)-4 {
			t.Fatalf("%v: length prefix %d, body %d", f.Type, n, len(b)-4)
		}
		got, err := DecodeFrame(b[4:])
		if err != nil {
			t.Fatalf("%v: %v", f.Type, err)
		}
		f.normalize()
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("round trip of %v:\n got %+v\nwant %+v", f.Type, got, f)
		}
		// Through the stream reader too, back to back.
		fr := frameReader{r: bytes.NewReader(append(b, b...))}
		for range 2 {
			if g, err := fr.Read(); err != nil || !reflect.DeepEqual(g, f) {
				t.Fatalf("reader: %v %+v", err, g)
			}
		}
	}
}

// TestFrameOverhead: a 4 KiB write costs a few dozen bytes of framing, not a copy of
// a header per block.
func TestFrameOverhead(t *testing.T) {
	f := Frame{Type: FrameWrite, Seq: 1 << 40, Offset: 1 << 35, Data: make([]byte, 4096)}
	b, err := AppendFrame(nil, &f)
	if err != nil {
		t.Fatal(err)
	}
	if over := len(b) - 4096; over > 40 {
		t.Fatalf("%d bytes of framing for a 4 KiB write", over)
	}
}

func TestFrameRejects(t *testing.T) {
	bad := []Frame{
		{},
		{Type: numFrameTypes},
		{Type: FrameWrite, Seq: 1},
		{Type: FrameWrite, Offset: ^uint64(0), Data: []byte{1}},
		{Type: FrameVolumeOpen, Volume: "v", Size: 1, BlockSize: 3},
		{Type: FrameKeyOffer, Volume: "v"},
		{Type: FrameAck, UUID: []byte{1, 2}},
		{Type: FrameAck, Volume: string(make([]byte, maxNameLen+1))},
		{Type: FrameWrite, Data: make([]byte, MaxFrameData+1)},
	}
	for _, f := range bad {
		if _, err := AppendFrame(nil, &f); !errors.Is(err, ErrFrame) {
			t.Errorf("%+v encoded: %v", f.Type, err)
		}
	}
	for _, body := range [][]byte{nil, {0x90}, {0xc1}, {0x9c, 0x05}} {
		if f, err := DecodeFrame(body); !errors.Is(err, ErrFrame) || !reflect.DeepEqual(f, Frame{}) {
			t.Errorf("decoded %x: %+v %v", body, f, err)
		}
	}
	// A hostile length prefix is refused before anything is read or allocated.
	fr := frameReader{r: bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff})}
	if _, err := fr.Read(); !errors.Is(err, ErrFrame) {
		t.Fatalf("4 GiB length: %v", err)
	}
	// Trailing bytes after a valid body are refused: a body is exactly one frame.
	b, _ := AppendFrame(nil, &Frame{Type: FrameAck})
	if _, err := DecodeFrame(append(b[4:], 0)); !errors.Is(err, ErrFrame) {
		t.Fatalf("trailing byte: %v", err)
	}
}

// FuzzFrame: decoding never panics, an error comes with a zero Frame, and whatever
// decodes encodes and decodes again to the same Frame.
func FuzzFrame(f *testing.F) {
	for _, fr := range sampleFrames() {
		b, err := AppendFrame(nil, &fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[4:])
	}
	f.Add([]byte{0x9c})
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := DecodeFrame(body)
		if err != nil {
			if !reflect.DeepEqual(fr, Frame{}) {
				t.Fatalf("error %v with a non-zero frame %+v", err, fr)
			}
			return
		}
		b, err := AppendFrame(nil, &fr)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", fr, err)
		}
		again, err := DecodeFrame(b[4:])
		if err != nil || !reflect.DeepEqual(again, fr) {
			t.Fatalf("re-decode: %v\n got %+v\nwant %+v", err, again, fr)
		}
	})
}
