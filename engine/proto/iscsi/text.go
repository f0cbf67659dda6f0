package iscsi

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"iter"
	"strconv"
	"strings"
)

// Text limits (RFC 7143 §6.1).
const (
	// MaxKeyLen: a key name (standard-label) must not exceed 63 characters.
	MaxKeyLen = 63
	// MaxValueLen: "If not otherwise specified, the maximum length of a simple-value
	// (not its encoded representation) is 255 bytes, not including the delimiter (comma
	// or zero byte)." Values are checked whole, as SPDK does: no standard list value
	// comes near it.
	MaxValueLen = 255
	// MaxLargeValueLen bounds the encoded values of the keys carrying large binary
	// values (CHAP_C and CHAP_R: at most 1024 bytes binary, 2050 characters as 0x-hex),
	// the same bound SPDK applies.
	MaxLargeValueLen = 8192
	// MinTextLen is the key=value data every implementation must accept in one
	// negotiation sequence (RFC 7143 §6.1: "at least 8192 bytes").
	MinTextLen = 8192
	// DefaultMaxTextLen bounds a logical text data segment assembled from C-bit
	// continuations: 64 KiB, what RFC 7143 §6.1 requires of implementations that
	// negotiate authentication methods with very long items.
	DefaultMaxTextLen = 64 << 10
)

// Reserved constant values (RFC 7143 §6.2): they answer an offer and must never be
// offered.
const (
	ValueNone          = "None"
	ValueReject        = "Reject"
	ValueIrrelevant    = "Irrelevant"
	ValueNotUnderstood = "NotUnderstood"
	ValueYes           = "Yes"
	ValueNo            = "No"
)

// KeyValue is one key=value pair of a Login or Text data segment. Keys and values are
// case sensitive (RFC 7143 §6.1).
type KeyValue struct {
	Key   string
	Value string
}

// largeValue reports the keys whose values may exceed 255 bytes.
func largeValue(key string) bool { return key == "CHAP_C" || key == "CHAP_R" }

// ParseText decodes a complete logical text data segment (the data of one Text or Login
// PDU, or of a C-bit sequence joined by an [Assembler]) into its key=value pairs, in
// order. Every pair must end with a NUL (RFC 7143 §6.1); runs of extra NULs (padding a
// sender counted into DataSegmentLength) are skipped. It fails on a pair without "=",
// an empty or over-long key, an over-long value, or a key that appears twice
// (ErrDuplicateKey): duplicate detection within one segment is the parser's, across
// PDUs it is the [Negotiator]'s. On error it returns nil. Key names are not checked
// against the standard-label grammar, as SPDK and LIO accept any: unknown keys are
// answered NotUnderstood.
func ParseText(block []byte) ([]KeyValue, error) {
	var kvs []KeyValue
	var seen map[string]struct{} // past a few pairs, so that duplicates cost O(n)
	for len(block) > 0 {
		if block[0] == 0 {
			block = block[1:]
			continue
		}
		end := indexByte(block, 0)
		if end < 0 {
			return nil, fmt.Errorf("%w: pair not terminated by NUL", ErrTextSyntax)
		}
		kv, err := parsePair(block[:end])
		if err != nil {
			return nil, err
		}
		if duplicate(kvs, &seen, kv.Key) {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateKey, kv.Key)
		}
		kvs = append(kvs, kv)
		block = block[end+1:]
	}
	return kvs, nil
}

// duplicate reports whether key is already among kvs, switching from a scan to a set
// once the block holds more than a handful of pairs: a 64 KiB block of tiny pairs must
// not cost quadratic time on the reactor.
func duplicate(kvs []KeyValue, seen *map[string]struct{}, key string) bool {
	const scan = 16
	if len(kvs) < scan {
		for i := range kvs {
			if kvs[i].Key == key {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*scan)
		for _, kv := range kvs {
			(*seen)[kv.Key] = struct{}{}
		}
	}
	if _, ok := (*seen)[key]; ok {
		return true
	}
	(*seen)[key] = struct{}{}
	return false
}

func parsePair(p []byte) (KeyValue, error) {
	eq := indexByte(p, '=')
	switch {
	case eq < 0:
		return KeyValue{}, fmt.Errorf("%w: no \"=\" in %q", ErrTextSyntax, truncate(p))
	case eq == 0:
		return KeyValue{}, fmt.Errorf("%w: empty key name", ErrTextSyntax)
	case eq > MaxKeyLen:
		return KeyValue{}, fmt.Errorf("%w: %q", ErrKeyTooLong, truncate(p[:eq]))
	}
	key := string(p[:eq])
	limit := MaxValueLen
	if largeValue(key) {
		limit = MaxLargeValueLen
	}
	if len(p)-eq-1 > limit {
		return KeyValue{}, fmt.Errorf("%w: %s has %d bytes", ErrValueTooLong, key,
			len(p)-eq-1)
	}
	return KeyValue{Key: key, Value: string(p[eq+1:])}, nil
}

func indexByte(p []byte, c byte) int {
	for i, b := range p {
		if b == c {
			return i
		}
	}
	return -1
}

func truncate(p []byte) string {
	if len(p) > 64 {
		return string(p[:64]) + "..."
	}
	return string(p)
}

// LookupKey returns the value of key in kvs.
func LookupKey(kvs []KeyValue, key string) (string, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// AppendKey appends "key=value\0" to dst.
func AppendKey(dst []byte, key, value string) []byte {
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	return append(dst, 0)
}

// AppendKeyNumber appends "key=<decimal>\0" to dst: numbers go out in decimal, as RFC
// 7143 §6.1 recommends for numerical values.
func AppendKeyNumber(dst []byte, key string, n uint64) []byte {
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = strconv.AppendUint(dst, n, 10)
	return append(dst, 0)
}

// AppendText appends every pair of kvs, in order.
func AppendText(dst []byte, kvs []KeyValue) []byte {
	for _, kv := range kvs {
		dst = AppendKey(dst, kv.Key, kv.Value)
	}
	return dst
}

// ParseNumber parses a numerical-value: a decimal-constant or a hex-constant ("0x" or
// "0X" then hex digits), below 2**64 (RFC 7143 §6.1). Leading zeros are accepted.
func ParseNumber(v string) (uint64, error) {
	if len(v) > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X') {
		n, err := strconv.ParseUint(v[2:], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: number %q", ErrBadValue, v)
		}
		return n, nil
	}
	if v == "" || v[0] < '0' || v[0] > '9' {
		return 0, fmt.Errorf("%w: number %q", ErrBadValue, v)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: number %q", ErrBadValue, v)
	}
	return n, nil
}

// ParseBool parses a boolean-value: exactly "Yes" or "No" (RFC 7143 §6.1).
func ParseBool(v string) (bool, error) {
	switch v {
	case ValueYes:
		return true, nil
	case ValueNo:
		return false, nil
	}
	return false, fmt.Errorf("%w: boolean %q", ErrBadValue, v)
}

// FormatBool returns "Yes" or "No".
func FormatBool(b bool) string {
	if b {
		return ValueYes
	}
	return ValueNo
}

// ParseBinary parses a binary value encoded as a hex-constant ("0x"/"0X", an odd digit
// count meaning a leading zero nibble) or a base64-constant ("0b"/"0B", RFC 4648
// standard alphabet, padding optional), as CHAP_C and CHAP_R travel (RFC 7143 §6.1,
// §12.1.3; libiscsi's iSCSI CHAP tests send both). The result must hold 1 to maxLen
// bytes.
func ParseBinary(v string, maxLen int) ([]byte, error) {
	if len(v) < 3 || v[0] != '0' {
		return nil, fmt.Errorf("%w: binary value %q", ErrBadValue, v)
	}
	var b []byte
	var err error
	switch v[1] {
	case 'x', 'X':
		digits := v[2:]
		if len(digits)%2 == 1 {
			digits = "0" + digits
		}
		b, err = hex.DecodeString(digits)
	case 'b', 'B':
		enc := base64.StdEncoding
		if !strings.HasSuffix(v, "=") {
			enc = base64.RawStdEncoding
		}
		b, err = enc.DecodeString(v[2:])
	default:
		err = ErrBadValue
	}
	if err != nil || len(b) == 0 || len(b) > maxLen {
		return nil, fmt.Errorf("%w: binary value of %d characters", ErrBadValue, len(v))
	}
	return b, nil
}

// AppendHex appends b as a hex-constant with a lowercase "0x" prefix, the form every
// initiator parses (libiscsi only looks for "CHAP_C=0x").
func AppendHex(dst, b []byte) []byte {
	dst = append(dst, '0', 'x')
	return hex.AppendEncode(dst, b)
}

// ListValues iterates over the items of a list-of-values, comma separated, in the
// offerer's order of preference (RFC 7143 §6.1, §6.2.1). It does not allocate.
func ListValues(v string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for {
			i := strings.IndexByte(v, ',')
			if i < 0 {
				yield(v)
				return
			}
			if !yield(v[:i]) {
				return
			}
			v = v[i+1:]
		}
	}
}
