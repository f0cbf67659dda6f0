package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// FrameType says what a frame carries. Each link carries its own types; a frame of
// another link's type ends the link.
type FrameType uint8

// Frame types. A→B is the replicating node (A) to its partner (B).
const (
	// FrameHello opens every link, A→B: Text is the partnership, Flags the link, Seq
	// the protocol version. B answers Hello on the control link only.
	FrameHello FrameType = iota + 1
	// FrameVolumeOpen, data A→B: replicate Volume (UUID, Size, BlockSize, Epoch;
	// FlagEncrypted when its keys must have been exchanged first, FlagResync when A
	// starts with regions to resynchronize).
	FrameVolumeOpen
	// FrameVolumeState, data B→A: what B holds of Volume: Epoch of its last full sync,
	// FlagComplete when that sync (and every resync since) finished.
	FrameVolumeState
	// FrameWrite, data A→B: Data at byte Offset, sequence Seq; FlagFUA, FlagSync (a
	// resync block rather than a host write).
	FrameWrite
	// FrameAck, data B→A: Seq applied (Status 0) or failed (Status: the bdev status).
	FrameAck
	// FrameFlush, data A→B: make everything before Seq durable; acked like a write.
	FrameFlush
	// FrameSyncStart and FrameSyncDone, data A→B: a resynchronization pass begins (the
	// replica is inconsistent until it ends) and ends (consistent at Epoch). Acked.
	FrameSyncStart
	FrameSyncDone
	// FrameKeyOffer, keys A→B: the key material of encrypted Volume (UUID): Flags is
	// the KEK source (1 key file, 2 passphrase), Data the KEK or passphrase.
	FrameKeyOffer
	// FrameKeyAck, keys B→A: the key of Volume is stored (wrapped under B's KEK).
	FrameKeyAck
	// FrameError, any link: Status (an errno-like code) and Text; the link ends.
	FrameError
	numFrameTypes
)

func (t FrameType) String() string {
	names := [...]string{"", "hello", "volume_open", "volume_state", "write", "ack", "flush",
		"sync_start", "sync_done", "key_offer", "key_ack", "error"}
	if int(t) < len(names) && t != 0 {
		return names[t]
	}
	return fmt.Sprintf("FrameType(%d)", uint8(t))
}

// Frame flags.
const (
	FlagFUA       = 1 << 0 // write: durable before the ack
	FlagSync      = 1 << 1 // write: a resync block
	FlagEncrypted = 1 << 2 // volume_open: the volume is encrypted; keys come first
	FlagResync    = 1 << 3 // volume_open: A has regions to resynchronize
	FlagComplete  = 1 << 4 // volume_state: the replica is consistent at Epoch
	FlagFull      = 1 << 5 // sync_start: a full sync (every region) onto a new epoch
	FlagFresh     = 1 << 6 // volume_state: the replica was never written (reads zeros)
)

// ProtocolVersion is sent in Hello; partners of another version refuse the link.
const ProtocolVersion = 1

// Limits of the codec: a frame never carries more than MaxFrameData bytes of data, and
// its encoding never exceeds MaxFrameBytes, which the reader checks before it reads the
// body, so that a hostile length cannot make it allocate.
const (
	MaxFrameData  = 1 << 20
	MaxFrameBytes = MaxFrameData + 4096
	maxNameLen    = 128
	maxTextLen    = 1024
)

// Frame is one message on a link. Fields a type does not use are zero. Encoded as a
// msgpack array in field order (as_array), so a frame costs a few bytes beyond its data.
type Frame struct {
	//lint:ignore U1000 msgpack reads the tag of this field to encode the struct as an array
	_msgpack  struct{} `msgpack:",as_array"`
	Type      FrameType
	Volume    string
	Seq       uint64
	Offset    uint64
	Flags     uint32
	Epoch     uint64
	Size      uint64
	BlockSize uint32
	UUID      []byte // 16 bytes or none
	Status    uint32
	Text      string
	Data      []byte
}

// ErrFrame marks a frame that does not decode or breaks the codec's rules; the link
// that carried it is closed.
var ErrFrame = errors.New("replication: malformed frame")

// check applies the codec's rules, so that decode never returns and encode never sends a
// frame the other side would refuse.
func (f *Frame) check() error {
	switch {
	case f.Type == 0 || f.Type >= numFrameTypes:
		return fmt.Errorf("type %d", f.Type)
	case len(f.Volume) > maxNameLen:
		return fmt.Errorf("volume name of %d bytes", len(f.Volume))
	case len(f.Text) > maxTextLen:
		return fmt.Errorf("text of %d bytes", len(f.Text))
	case len(f.Data) > MaxFrameData:
		return fmt.Errorf("%d bytes of data", len(f.Data))
	case len(f.UUID) != 0 && len(f.UUID) != 16:
		return fmt.Errorf("uuid of %d bytes", len(f.UUID))
	}
	switch f.Type {
	case FrameWrite:
		if len(f.Data) == 0 || f.Offset+uint64(len(f.Data)) < f.Offset {
			return fmt.Errorf("write of %d bytes at %d", len(f.Data), f.Offset)
		}
	case FrameVolumeOpen:
		if f.Volume == "" || f.Size == 0 || f.BlockSize == 0 || f.BlockSize&(f.BlockSize-1) != 0 {
			return fmt.Errorf("volume_open %q: size %d, block size %d", f.Volume, f.Size, f.BlockSize)
		}
	case FrameKeyOffer:
		if f.Volume == "" || len(f.Data) == 0 || len(f.Data) > maxTextLen {
			return fmt.Errorf("key_offer %q with %d bytes", f.Volume, len(f.Data))
		}
	}
	return nil
}

// normalize makes empty slices nil, so that a frame decoded and encoded again compares
// equal to itself whatever the encoder chose for empty fields.
func (f *Frame) normalize() {
	if len(f.UUID) == 0 {
		f.UUID = nil
	}
	if len(f.Data) == 0 {
		f.Data = nil
	}
}

// AppendFrame appends f's wire form to dst: a 4-byte big-endian length, then the
// msgpack body.
func AppendFrame(dst []byte, f *Frame) ([]byte, error) {
	if err := f.check(); err != nil {
		return dst, fmt.Errorf("encode %v: %v: %w", f.Type, err, ErrFrame)
	}
	start := len(dst)
	buf := bytes.NewBuffer(append(dst, 0, 0, 0, 0))
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(f); err != nil {
		return dst, fmt.Errorf("encode %v: %w", f.Type, err)
	}
	out := buf.Bytes()
	n := len(out) - start - 4
	if n > MaxFrameBytes {
		return dst, fmt.Errorf("encode %v: %d bytes: %w", f.Type, n, ErrFrame)
	}
	binary.BigEndian.PutUint32(out[start:], uint32(n))
	return out, nil
}

// DecodeFrame decodes one msgpack body (without its length prefix). On error the
// Frame is zero.
func DecodeFrame(body []byte) (Frame, error) {
	var f Frame
	if len(body) > MaxFrameBytes {
		return Frame{}, fmt.Errorf("%d bytes: %w", len(body), ErrFrame)
	}
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	r := bytes.NewReader(body)
	dec.Reset(r)
	if err := dec.Decode(&f); err != nil {
		return Frame{}, fmt.Errorf("%v: %w", err, ErrFrame)
	}
	if r.Len() != 0 {
		return Frame{}, fmt.Errorf("%d bytes after the frame: %w", r.Len(), ErrFrame)
	}
	if err := f.check(); err != nil {
		return Frame{}, fmt.Errorf("%v: %w", err, ErrFrame)
	}
	f.normalize()
	return f, nil
}

// frameReader reads length-prefixed frames from a link. It reuses its body buffer; the
// decoder copies Data out of it, so a frame returned is the caller's to keep.
type frameReader struct {
	r    io.Reader
	hdr  [4]byte
	body []byte
}

func (fr *frameReader) Read() (Frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[:])
	if n == 0 || n > MaxFrameBytes {
		return Frame{}, fmt.Errorf("frame length %d: %w", n, ErrFrame)
	}
	if cap(fr.body) < int(n) {
		fr.body = make([]byte, n)
	}
	fr.body = fr.body[:n]
	if _, err := io.ReadFull(fr.r, fr.body); err != nil {
		return Frame{}, err
	}
	return DecodeFrame(fr.body)
}

// writeFrame encodes f into scratch and writes it whole to w. It returns scratch for
// reuse.
func writeFrame(w io.Writer, scratch []byte, f *Frame) ([]byte, error) {
	b, err := AppendFrame(scratch[:0], f)
	if err != nil {
		return scratch, err
	}
	_, err = w.Write(b)
	return b, err
}
