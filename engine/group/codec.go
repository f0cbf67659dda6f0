package group

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Everything the group stores or sends between nodes is msgpack (DESIGN.md, control
// plane): log entries (entry.go), snapshot data (state.go), conf change contexts and the
// peer envelopes (envelope.go). Raft's own messages ride inside envelopes as the
// protobuf bytes raftpb marshals.

// maxNesting bounds how deeply msgpack containers may nest in anything we decode: our
// types nest at most five deep, and the bound keeps a hostile input from recursing the
// decoder's stack.
const maxNesting = 16

var errMsgpackShape = errors.New("malformed msgpack")

// checkMsgpack walks b as exactly one msgpack value and rejects it unless every length
// prefix fits in the bytes that remain and containers nest at most maxNesting deep. It runs
// before every decode because the msgpack decoder preallocates a slice of the length the
// input claims (a 5-byte array32 header would ask for 2^32 elements); after this check no
// claimed length exceeds len(b).
func checkMsgpack(b []byte) error {
	var stack [maxNesting + 1]int // items still to read at each open level
	depth, p := 0, 0
	stack[0] = 1
	for depth >= 0 {
		if stack[depth] == 0 {
			depth--
			continue
		}
		stack[depth]--
		if p >= len(b) {
			return fmt.Errorf("%w: truncated at byte %d", errMsgpackShape, p)
		}
		skip, items, err := msgpackHead(b[p:])
		if err != nil {
			return fmt.Errorf("%w at byte %d", err, p)
		}
		if skip > len(b)-p || items > len(b)-p-skip {
			return fmt.Errorf("%w: length at byte %d exceeds the input", errMsgpackShape, p)
		}
		p += skip
		if items > 0 {
			if depth == maxNesting {
				return fmt.Errorf("%w: nested deeper than %d", errMsgpackShape, maxNesting)
			}
			depth++
			stack[depth] = items
		}
	}
	if p != len(b) {
		return fmt.Errorf("%w: %d trailing bytes", errMsgpackShape, len(b)-p)
	}
	return nil
}

// msgpackHead decodes the header of the value at the start of b: how many bytes the header
// and any raw payload (str, bin, ext) take, and how many nested values follow (array
// elements, map keys plus values). The msgpack spec's format table, in order.
func msgpackHead(b []byte) (skip, items int, err error) {
	c := b[0]
	n := func(w int) (int, error) { // a big-endian length of w bytes after the code
		if len(b) < 1+w {
			return 0, errMsgpackShape
		}
		var v uint64
		for _, x := range b[1 : 1+w] {
			v = v<<8 | uint64(x)
		}
		if v > uint64(len(b)) {
			return 0, errMsgpackShape
		}
		return int(v), nil
	}
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixints, nil, bools
		return 1, 0, nil
	case c <= 0x8f: // fixmap
		return 1, 2 * int(c&0x0f), nil
	case c <= 0x9f: // fixarray
		return 1, int(c & 0x0f), nil
	case c <= 0xbf: // fixstr
		return 1 + int(c&0x1f), 0, nil
	}
	switch c {
	case 0xcc, 0xd0:
		return 2, 0, nil
	case 0xcd, 0xd1:
		return 3, 0, nil
	case 0xca, 0xce, 0xd2:
		return 5, 0, nil
	case 0xcb, 0xcf, 0xd3:
		return 9, 0, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte + data
		return 2 + 1<<(c-0xd4), 0, nil
	case 0xc4, 0xd9, 0xc5, 0xda, 0xc6, 0xdb: // bin and str 8/16/32
		w := map[byte]int{0xc4: 1, 0xd9: 1, 0xc5: 2, 0xda: 2, 0xc6: 4, 0xdb: 4}[c]
		l, err := n(w)
		return 1 + w + l, 0, err
	case 0xc7, 0xc8, 0xc9: // ext 8/16/32: length, type byte, data
		w := 1 << (c - 0xc7)
		l, err := n(w)
		return 2 + w + l, 0, err
	case 0xdc, 0xdd: // array 16/32
		l, err := n(2 << (c - 0xdc))
		return 1 + 2<<(c-0xdc), l, err
	case 0xde, 0xdf: // map 16/32
		l, err := n(2 << (c - 0xde))
		return 1 + 2<<(c-0xde), 2 * l, err
	}
	return 0, 0, fmt.Errorf("%w: reserved code %#x", errMsgpackShape, c)
}

// unmarshal decodes b into v after checkMsgpack. Unknown map keys are skipped, so a newer
// peer's added fields do not break an older one.
func unmarshal(b []byte, v any) error {
	if err := checkMsgpack(b); err != nil {
		return err
	}
	d := msgpack.NewDecoder(bytes.NewReader(b))
	return d.Decode(v)
}

// marshal encodes v. Our types hold no maps, so the bytes are deterministic: every
// replica that encodes the same value (a snapshot, say) gets the same bytes.
func marshal(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		// Only unsupported Go types fail to encode, and ours are fixed: a programmer error.
		panic(fmt.Sprintf("group: msgpack encode %T: %v", v, err))
	}
	return b
}

// Frames on the peer link: a 4-byte big-endian length, then that many bytes of one
// msgpack Envelope. maxFrameBytes bounds a frame (a snapshot of the whole reservation
// database is the largest: 64 MiB holds thousands of volumes with full registrant tables).
const (
	frameHeaderBytes = 4
	maxFrameBytes    = 64 << 20
)

// appendFrame appends env's frame to dst.
func appendFrame(dst []byte, env *Envelope) []byte {
	body := marshal(env)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// DecodeFrame decodes the first frame of b and returns the envelope and the number of
// bytes it took. need > 0 (with a nil error) asks for that many more bytes before the
// frame can be decoded. A frame longer than maxFrameBytes or whose body does not decode
// is an error: the link is broken and the caller drops the connection.
func DecodeFrame(b []byte) (env Envelope, n int, need int, err error) {
	if len(b) < frameHeaderBytes {
		return Envelope{}, 0, frameHeaderBytes - len(b), nil
	}
	l := binary.BigEndian.Uint32(b)
	if l > maxFrameBytes {
		return Envelope{}, 0, 0, fmt.Errorf("decode frame: length %d exceeds %d", l, maxFrameBytes)
	}
	total := frameHeaderBytes + int(l)
	if len(b) < total {
		return Envelope{}, 0, total - len(b), nil
	}
	env, err = DecodeEnvelope(b[frameHeaderBytes:total])
	if err != nil {
		return Envelope{}, 0, 0, fmt.Errorf("decode frame: %w", err)
	}
	return env, total, 0, nil
}
