package bdev

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// ParseUUID parses the canonical 8-4-4-4-12 hex form.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("uuid %q: want the 8-4-4-4-12 hex form: %w", s, ErrInvalid)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		return u, fmt.Errorf("uuid %q: %w", s, ErrInvalid)
	}
	copy(u[:], b)
	return u, nil
}

// FormatUUID prints a UUID in the canonical form.
func FormatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func parseOptionalUUID(s string) ([16]byte, error) {
	if s == "" {
		return [16]byte{}, nil
	}
	return ParseUUID(s)
}
