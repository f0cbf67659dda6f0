package scsi

import (
	"strconv"
	"strings"
)

// TransportID identifies an iSCSI initiator in PERSISTENT RESERVE OUT and IN data (SPC-4
// §7.6.4.6, table "iSCSI TransportID"). With HasISID it names one initiator port (FORMAT
// CODE 01b, "iqn...,i,0x<ISID>"), which is what a registration belongs to; without, the
// initiator device (FORMAT CODE 00b), which matches every port of that initiator.
type TransportID struct {
	Name    string // iSCSI name, without the ",i,0x" suffix
	ISID    uint64 // 48-bit ISID, meaningful with HasISID
	HasISID bool
}

// TransportID layout constants (SPC-4 §7.6.4.6).
const (
	protocolISCSI      = 0x5 // PROTOCOL IDENTIFIER, SPC-4 table "PROTOCOL IDENTIFIER values"
	tidFormatName      = 0x0
	tidFormatPortName  = 0x1
	tidMinLen          = 24  // ADDITIONAL LENGTH ≥ 20 (SPC-4 §7.6.4.6)
	maxISCSINameLen    = 223 // RFC 7143 §4.2.7.1
	isidSeparator      = ",i,0x"
	maxISIDHexDigits   = 12
	isidMask           = 1<<48 - 1
	transportIDHdrLen  = 4
	transportIDMaxName = maxISCSINameLen + len(isidSeparator) + maxISIDHexDigits
)

// TransportIDError reports why a TransportID does not parse; Offset is the byte of the
// TransportID at fault, for the parameter-list field pointer.
type TransportIDError struct {
	Offset int
	Reason string
}

// Error formats the error for logs.
func (e *TransportIDError) Error() string {
	return "scsi: transport id: " + e.Reason + " at byte " + strconv.Itoa(e.Offset)
}

// String renders the SCSI name of the port or device: "iqn...,i,0x00023d000001" or the
// bare iSCSI name.
func (t TransportID) String() string {
	if !t.HasISID {
		return t.Name
	}
	return t.Name + isidSeparator + isidHex(t.ISID)
}

func isidHex(isid uint64) string {
	s := strconv.FormatUint(isid&isidMask|1<<48, 16)
	return s[1:] // the 1<<48 sentinel keeps leading zeros: always 12 digits
}

// Len returns the encoded length: the null-terminated name padded to a multiple of 4,
// and never less than 24 bytes.
func (t TransportID) Len() int {
	n := transportIDHdrLen + len(t.String()) + 1
	n = (n + 3) &^ 3
	return max(n, tidMinLen)
}

// Append encodes t as an iSCSI TransportID and appends it to b. Names longer than 223
// bytes (RFC 7143's limit) are a programming error; Append encodes them anyway.
func (t TransportID) Append(b []byte) []byte {
	n := t.Len()
	start := len(b)
	b = append(b, make([]byte, n)...)
	p := b[start:]
	p[0] = protocolISCSI // @0 FORMAT CODE bits 7:6, PROTOCOL IDENTIFIER bits 3:0
	if t.HasISID {
		p[0] |= tidFormatPortName << 6
	}
	be.PutUint16(p[2:4], uint16(n-transportIDHdrLen)) // @2 ADDITIONAL LENGTH
	copy(p[4:], t.String())                           // @4 name, NUL and padding zero
	return b
}

// DecodeTransportID parses one iSCSI TransportID at the start of b and returns it with
// the number of bytes it occupies. Other protocols' TransportIDs are refused: an iSCSI
// target has no port to match them against. Padding is not checked beyond the
// terminating NUL. On error the TransportID is the zero value.
func DecodeTransportID(b []byte) (TransportID, int, error) {
	if len(b) < transportIDHdrLen {
		return TransportID{}, 0, &TransportIDError{0, "shorter than its header"}
	}
	if b[0]&0x0F != protocolISCSI {
		return TransportID{}, 0, &TransportIDError{0, "protocol is not iSCSI"}
	}
	format := b[0] >> 6
	if format != tidFormatName && format != tidFormatPortName {
		return TransportID{}, 0, &TransportIDError{0, "unknown format code"}
	}
	n := transportIDHdrLen + int(be.Uint16(b[2:4]))
	if n > len(b) {
		return TransportID{}, 0, &TransportIDError{2, "additional length past the data"}
	}
	body := b[transportIDHdrLen:n]
	end := strings.IndexByte(string(body), 0)
	if end <= 0 || end > transportIDMaxName {
		return TransportID{}, 0, &TransportIDError{4, "name not null-terminated"}
	}
	t, err := parseTransportName(string(body[:end]), format == tidFormatPortName)
	if err != nil {
		return TransportID{}, 0, err
	}
	return t, n, nil
}

func parseTransportName(s string, port bool) (TransportID, error) {
	if !port {
		if len(s) > maxISCSINameLen {
			return TransportID{}, &TransportIDError{4, "iSCSI name too long"}
		}
		return TransportID{Name: s}, nil
	}
	// SPC-4 §7.6.4.6: "ISCSI NAME,i,0xISID"; the separator letters are case-insensitive
	// in practice (initiators print ISIDs in either case).
	i := lastSeparator(s)
	if i <= 0 || i > maxISCSINameLen {
		return TransportID{}, &TransportIDError{4, "no ,i,0x separator"}
	}
	hex := s[i+len(isidSeparator):]
	if len(hex) == 0 || len(hex) > maxISIDHexDigits {
		return TransportID{}, &TransportIDError{4 + i, "ISID is not 1 to 12 hex digits"}
	}
	isid, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return TransportID{}, &TransportIDError{4 + i, "ISID is not hexadecimal"}
	}
	return TransportID{Name: s[:i], ISID: isid, HasISID: true}, nil
}

// lastSeparator returns the index of the last ",i,0x" in s, matching its letters in
// either case, or -1. It compares bytes, so names that are not valid UTF-8 keep their
// offsets (strings.ToLower would rewrite invalid bytes).
func lastSeparator(s string) int {
	for i := len(s) - len(isidSeparator); i >= 0; i-- {
		if s[i] == ',' && s[i+1]|0x20 == 'i' && s[i+2] == ',' && s[i+3] == '0' &&
			s[i+4]|0x20 == 'x' {
			return i
		}
	}
	return -1
}
