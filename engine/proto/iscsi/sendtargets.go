package iscsi

import (
	"fmt"
	"strconv"
	"strings"
)

// SendTargetsQuery is the value of a SendTargets key (RFC 7143 §13.3, Appendix C).
type SendTargetsQuery struct {
	// All: "SendTargets=All", every target the initiator may see. Meant for discovery
	// sessions, but libiscsi's iSCSISendTargets tests send it on normal sessions too
	// (sahlberg/libiscsi#298), where the target may list them all or just its own.
	All bool
	// Session: "SendTargets=" with an empty value, on a normal session: the session's
	// own target.
	Session bool
	// Target: "SendTargets=<iSCSI name>", that target alone (nothing if unknown).
	Target string
}

// ParseSendTargets parses a SendTargets value. A value that is neither "All", empty,
// nor a well-formed iSCSI name is ErrBadValue: the target answers "SendTargets=Reject"
// (libiscsi's iSCSISendTargets.Invalid expects "SendTargets=Alle" and "SendTargets=A"
// to fail).
func ParseSendTargets(v string) (SendTargetsQuery, error) {
	switch {
	case v == "All":
		return SendTargetsQuery{All: true}, nil
	case v == "":
		return SendTargetsQuery{Session: true}, nil
	case ValidName(v):
		return SendTargetsQuery{Target: v}, nil
	}
	return SendTargetsQuery{}, fmt.Errorf("%w: SendTargets %q", ErrBadValue, v)
}

// MaxNameLen is the longest iSCSI name (RFC 7143 §4.2.7.1: 223 bytes).
const MaxNameLen = 223

// ValidName reports whether v is a well-formed iSCSI name (RFC 7143 §4.2.7): "iqn."
// followed by a yyyy-mm date, a dot and a naming authority; "eui." followed by 16 hex
// digits; or "naa." followed by 16 or 32 hex digits. It checks the form only; it does
// not apply the stringprep profile. Logins do not use it: the target matches names as
// the initiator sends them.
func ValidName(v string) bool {
	if len(v) > MaxNameLen || len(v) < 5 {
		return false
	}
	switch v[:4] {
	case "iqn.":
		return validIQN(v[4:])
	case "eui.":
		return len(v) == 4+16 && isHex(v[4:])
	case "naa.":
		return (len(v) == 4+16 || len(v) == 4+32) && isHex(v[4:])
	}
	return false
}

func validIQN(s string) bool {
	// yyyy-mm. then at least one character of naming authority.
	if len(s) < 9 || s[4] != '-' || s[7] != '.' {
		return false
	}
	if !isDigits(s[:4]) || !isDigits(s[5:7]) {
		return false
	}
	for _, c := range []byte(s[8:]) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == ':' || c >= 0x80
		if !ok {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// AppendTargetAddress appends "TargetAddress=<host>:<port>,<tpgt>\0" (RFC 7143 §13.8),
// bracketing IPv6 literals. A SendTargets answer is TargetName=<name> followed by one
// TargetAddress per portal of the target.
func AppendTargetAddress(dst []byte, host string, port, tpgt uint16) []byte {
	dst = append(dst, "TargetAddress="...)
	if strings.IndexByte(host, ':') >= 0 && !strings.HasPrefix(host, "[") {
		dst = append(dst, '[')
		dst = append(dst, host...)
		dst = append(dst, ']')
	} else {
		dst = append(dst, host...)
	}
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(port), 10)
	dst = append(dst, ',')
	dst = strconv.AppendUint(dst, uint64(tpgt), 10)
	return append(dst, 0)
}
