package iscsi

// Assembler joins the data segments of a sequence of Text or Login PDUs linked by the C
// (continue) bit into one logical text data segment (RFC 7143 §6.1: "Data segments in a
// series of PDUs that have the C bit set to 1 and end with a PDU that has the C bit set
// to 0 ... have to be considered as forming a single logical-text-data-segment"). A
// key=value pair may span PDUs, so nothing is parsed until the sequence ends.
//
// It holds one connection's state; it is not safe for concurrent use.
type Assembler struct {
	buf    []byte
	max    int
	active bool
}

// NewAssembler returns an assembler that refuses segments longer than maxLen bytes
// (DefaultMaxTextLen if maxLen <= 0).
func NewAssembler(maxLen int) *Assembler {
	if maxLen <= 0 {
		maxLen = DefaultMaxTextLen
	}
	return &Assembler{max: maxLen}
}

// Add takes the data segment of the next PDU and its C bit. While more is true it keeps
// the data and returns complete false. With more false it returns the whole logical
// segment; the result aliases seg when no earlier piece was kept, and otherwise the
// assembler's buffer, valid until the next Add or Reset. Past the bound it returns
// ErrTextTooLong and forgets the sequence.
func (a *Assembler) Add(seg []byte, more bool) (block []byte, complete bool, err error) {
	if a.max <= 0 {
		a.max = DefaultMaxTextLen
	}
	if len(a.buf)+len(seg) > a.max {
		a.Reset()
		return nil, false, ErrTextTooLong
	}
	if !a.active && !more {
		return seg, true, nil
	}
	a.active = true
	a.buf = append(a.buf, seg...)
	if more {
		return nil, false, nil
	}
	block = a.buf
	a.buf = a.buf[:0:0]
	a.active = false
	return block, true, nil
}

// Pending reports whether a C-bit sequence is under way.
func (a *Assembler) Pending() bool { return a.active }

// Reset forgets any partial sequence.
func (a *Assembler) Reset() {
	a.buf = a.buf[:0:0]
	a.active = false
}

// SplitText cuts the first PDU's worth of a text data segment: at most maxLen bytes,
// ending after the last NUL that fits so that each PDU carries whole key=value pairs
// when it can (some initiators parse each PDU on its own), and at maxLen otherwise (a
// pair longer than a PDU must span PDUs, which RFC 7143 §6.1 allows). rest is what
// remains: when it is empty, seg goes out with C=0 (and F=1 on a Text Response);
// otherwise with C=1, and the target sends the next piece when the initiator asks for
// it (an empty Text Request with the response's TTT, or an empty Login Request). Both
// results alias block.
//
// Preconditions: maxLen > 0.
func SplitText(block []byte, maxLen int) (seg, rest []byte) {
	if maxLen <= 0 {
		panic("iscsi: SplitText with maxLen <= 0")
	}
	if len(block) <= maxLen {
		return block, nil
	}
	cut := maxLen
	for i := maxLen - 1; i >= 0; i-- {
		if block[i] == 0 {
			cut = i + 1
			break
		}
	}
	return block[:cut], block[cut:]
}
