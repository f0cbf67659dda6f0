package scsi

// SanitizeOverwrite is the OVERWRITE service action's parameter list (SBC-3 table
// "OVERWRITE service action parameter list"): INVERT @0 bit 7, TEST @0 bits 6:5,
// OVERWRITE COUNT @0 bits 4:0, INITIALIZATION PATTERN LENGTH @2-3 and the pattern @4.
type SanitizeOverwrite struct {
	// Invert inverts the pattern between consecutive passes; with an even Count the
	// first pass writes the inversion, so that the last one writes the pattern.
	Invert bool
	// Count is the number of overwrite passes, 1 to 31.
	Count uint8
	// Pattern is repeated to fill each logical block, restarting at each block's first
	// byte. It aliases the parameter data it was decoded from.
	Pattern []byte
}

// sanitizeOverwriteHeader is the parameter list's fixed part.
const sanitizeOverwriteHeader = 4

// CheckSanitizeLength checks SANITIZE's PARAMETER LIST LENGTH against its service action
// (SBC-3 table "SANITIZE service action codes"): OVERWRITE needs more than 4 bytes and
// fewer than the logical block length + 5, the others none. Anything else is INVALID
// FIELD IN CDB @7 (libiscsi Sanitize.Overwrite, .BlockErase, .ExitFailureMode).
func CheckSanitizeLength(c *CDB, blockSize uint32) error {
	n := c.ParameterListLength
	ok := n == 0
	if c.ServiceAction == SASanitizeOverwrite {
		ok = n > sanitizeOverwriteHeader && n < blockSize+sanitizeOverwriteHeader+1
	}
	if !ok {
		return InvalidFieldInCDB(7, -1)
	}
	return nil
}

// DecodeSanitizeOverwrite decodes the OVERWRITE parameter list b (PARAMETER LIST LENGTH
// bytes, already checked by [CheckSanitizeLength]) for a logical block of blockSize
// bytes. An OVERWRITE COUNT of 0 (reserved), a TEST field other than 00b, an
// INITIALIZATION PATTERN LENGTH of 0 or above the block length, or one that does not fit
// the list, is INVALID FIELD IN PARAMETER LIST pointing at the field; the zero value is
// returned with the error. It allocates only the error.
func DecodeSanitizeOverwrite(b []byte, blockSize uint32) (SanitizeOverwrite, error) {
	if len(b) < sanitizeOverwriteHeader {
		return SanitizeOverwrite{}, ErrParameterListLength
	}
	o := SanitizeOverwrite{Invert: b[0]&0x80 != 0, Count: b[0] & 0x1F}
	n := int(be.Uint16(b[2:4]))
	switch {
	case o.Count == 0:
		return SanitizeOverwrite{}, InvalidFieldInParameterList(0, 4)
	case b[0]&0x60 != 0:
		return SanitizeOverwrite{}, InvalidFieldInParameterList(0, 6)
	case n == 0 || n > int(blockSize) || n > len(b)-sanitizeOverwriteHeader:
		return SanitizeOverwrite{}, InvalidFieldInParameterList(2, -1)
	}
	o.Pattern = b[sanitizeOverwriteHeader : sanitizeOverwriteHeader+n]
	return o, nil
}

// Append encodes the parameter list (tests, and a Go initiator).
func (o *SanitizeOverwrite) Append(b []byte) []byte {
	b = append(b, bit(o.Invert, 7)|o.Count&0x1F, 0)
	b = be.AppendUint16(b, uint16(len(o.Pattern)))
	return append(b, o.Pattern...)
}

// FillPattern fills buf, a whole number of blockSize-byte blocks, with the pattern
// repeated from each block's first byte, inverted when invert is set.
func (o *SanitizeOverwrite) FillPattern(buf []byte, blockSize uint32, invert bool) {
	bs := int(blockSize)
	blk := buf[:bs]
	for i := 0; i < bs; i += len(o.Pattern) {
		copy(blk[i:], o.Pattern)
	}
	if invert {
		for i := range blk {
			blk[i] = ^blk[i]
		}
	}
	for n := bs; n < len(buf); {
		n += copy(buf[n:], buf[:n])
	}
}

// PassInverted reports whether overwrite pass p (0-based) writes the inverted pattern:
// with INVERT, passes alternate and the last one writes the pattern itself.
func (o *SanitizeOverwrite) PassInverted(p int) bool {
	return o.Invert && (int(o.Count)-1-p)%2 == 1
}
