package iscsi

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"testing"
)

// Every decoder has a fuzz target with these properties: it never panics; on error the
// returned value is the zero value; otherwise decode → encode → decode gives the same
// value. Seeds live in testdata/fuzz/<target>/ (see seeds_test.go) and run with every
// `go test`.

// codec is one typed BHS view: its opcode, decoder and encoder.
type codec struct {
	op     Opcode
	decode func(*BHS) (any, error)
	zero   any
	put    func(any, *BHS)
}

func codecOf[T any](op Opcode, dec func(*BHS) (T, error), put func(*T, *BHS)) codec {
	var zero T
	return codec{op: op, zero: zero,
		decode: func(b *BHS) (any, error) { return dec(b) },
		put:    func(v any, b *BHS) { x := v.(T); put(&x, b) }}
}

var codecs = []codec{
	codecOf(OpSCSICommand, DecodeSCSICommand, (*SCSICommand).Put),
	codecOf(OpSCSIResponse, DecodeSCSIResponse, (*SCSIResponse).Put),
	codecOf(OpDataIn, DecodeDataIn, (*DataIn).Put),
	codecOf(OpDataOut, DecodeDataOut, (*DataOut).Put),
	codecOf(OpR2T, DecodeR2T, (*R2T).Put),
	codecOf(OpNOPOut, DecodeNOPOut, (*NOPOut).Put),
	codecOf(OpNOPIn, DecodeNOPIn, (*NOPIn).Put),
	codecOf(OpTMFRequest, DecodeTMFRequest, (*TMFRequest).Put),
	codecOf(OpTMFResponse, DecodeTMFResponse, (*TMFResponse).Put),
	codecOf(OpTextRequest, DecodeTextRequest, (*TextRequest).Put),
	codecOf(OpTextResponse, DecodeTextResponse, (*TextResponse).Put),
	codecOf(OpLogoutRequest, DecodeLogoutRequest, (*LogoutRequest).Put),
	codecOf(OpLogoutResponse, DecodeLogoutResponse, (*LogoutResponse).Put),
	codecOf(OpSNACKRequest, DecodeSNACKRequest, (*SNACKRequest).Put),
	codecOf(OpAsyncMessage, DecodeAsyncMessage, (*AsyncMessage).Put),
	codecOf(OpReject, DecodeReject, (*Reject).Put),
	codecOf(OpLoginRequest, DecodeLoginRequest, (*LoginRequest).Put),
	codecOf(OpLoginResponse, DecodeLoginResponse, (*LoginResponse).Put),
}

// FuzzBHS runs every typed decoder over arbitrary headers.
func FuzzBHS(f *testing.F) {
	f.Add(make([]byte, BHSLen))
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := BHSOf(p)
		if err != nil {
			if b != nil || len(p) >= BHSLen {
				t.Fatalf("BHSOf: %v with %d bytes", err, len(p))
			}
			return
		}
		for _, c := range codecs {
			v, err := c.decode(b)
			if err != nil {
				if !errors.Is(err, ErrOpcode) || b.Opcode() == c.op ||
					!reflect.DeepEqual(v, c.zero) {
					t.Fatalf("%s: %v with %+v", c.op, err, v)
				}
				continue
			}
			var out BHS
			c.put(v, &out)
			again, err := c.decode(&out)
			if err != nil || !reflect.DeepEqual(again, v) {
				t.Fatalf("%s: round trip %+v != %+v", c.op, again, v)
			}
			if out.DataSegmentLength() != 0 && out.DataSegmentLength() != b.DataSegmentLength() {
				t.Fatalf("%s: DataSegmentLength changed", c.op)
			}
		}
	})
}

// FuzzLayout checks the framing of arbitrary headers under arbitrary settings.
func FuzzLayout(f *testing.F) {
	f.Add(make([]byte, BHSLen), uint8(0), uint32(0))
	f.Fuzz(func(t *testing.T, p []byte, flags uint8, maxRecv uint32) {
		b, err := BHSOf(p)
		if err != nil {
			return
		}
		lp := LayoutParams{Receiver: Role(flags & 1), HeaderDigest: flags&2 != 0,
			DataDigest: flags&4 != 0, MaxRecvDataSegmentLength: maxRecv}
		l, err := b.Layout(lp)
		if err != nil {
			var pe *PDUError
			if !errors.As(err, &pe) || pe.Fatal() || l != (Layout{}) {
				t.Fatalf("Layout error %v with %+v", err, l)
			}
			return
		}
		dd := uint32(0)
		if l.DataDigest {
			dd = DigestLen
		}
		switch {
		case l.DataLen != b.DataSegmentLength() || l.AHSLen != b.AHSLen():
			t.Fatalf("layout %+v disagrees with the header", l)
		case (l.DataLen+l.PadLen)%4 != 0 || l.PadLen > 3:
			t.Fatalf("bad padding %+v", l)
		case l.DataDigest && l.DataLen == 0:
			t.Fatalf("data digest without data %+v", l)
		case l.Len() != l.HeaderEnd()+l.DataLen+l.PadLen+dd:
			t.Fatalf("lengths do not add up %+v", l)
		}
		if NewLayout(l.AHSLen, l.DataLen, lp.HeaderDigest, lp.DataDigest) != l {
			t.Fatalf("sender and receiver layouts differ: %+v", l)
		}
	})
}

// FuzzCommandAHS parses arbitrary AHS areas.
func FuzzCommandAHS(f *testing.F) {
	f.Add(testAHS[:])
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := ParseCommandAHS(p)
		if err != nil {
			var pe *PDUError
			if !errors.As(err, &pe) || pe.Reason != RejectInvalidPDUField ||
				c.ExtendedCDB != nil || c.HasBidiReadLength || c.BidiReadLength != 0 {
				t.Fatalf("error %v with %+v", err, c)
			}
			return
		}
		var out []byte
		if len(c.ExtendedCDB) > 0 {
			out = AppendExtendedCDBAHS(out, c.ExtendedCDB)
		}
		if c.HasBidiReadLength {
			out = AppendBidiReadAHS(out, c.BidiReadLength)
		}
		again, err := ParseCommandAHS(out)
		if err != nil || !bytes.Equal(again.ExtendedCDB, c.ExtendedCDB) ||
			again.HasBidiReadLength != c.HasBidiReadLength ||
			again.BidiReadLength != c.BidiReadLength {
			t.Fatalf("round trip %+v != %+v (%v)", again, c, err)
		}
	})
}

// FuzzSenseData splits arbitrary SCSI Response data segments.
func FuzzSenseData(f *testing.F) {
	f.Add([]byte{0, 2, 0x70, 0})
	f.Fuzz(func(t *testing.T, seg []byte) {
		sense, resp, err := SplitSenseData(seg)
		if err != nil {
			if sense != nil || resp != nil {
				t.Fatal("non-zero on error")
			}
			return
		}
		if len(seg) == 0 {
			return
		}
		if out := append(AppendSenseData(nil, sense), resp...); !bytes.Equal(out, seg) {
			t.Fatalf("round trip %x != %x", out, seg)
		}
	})
}

// FuzzParseText decodes arbitrary key=value text.
func FuzzParseText(f *testing.F) {
	f.Add([]byte("InitiatorName=iqn.x\x00SessionType=Normal\x00"))
	f.Fuzz(func(t *testing.T, p []byte) {
		kvs, err := ParseText(p)
		if err != nil {
			if kvs != nil {
				t.Fatal("non-nil pairs on error")
			}
			return
		}
		for _, kv := range kvs {
			limit := MaxValueLen
			if largeValue(kv.Key) {
				limit = MaxLargeValueLen
			}
			if kv.Key == "" || len(kv.Key) > MaxKeyLen || len(kv.Value) > limit ||
				bytes.IndexByte([]byte(kv.Key), '=') >= 0 {
				t.Fatalf("pair %q breaks the limits", kv)
			}
		}
		again, err := ParseText(AppendText(nil, kvs))
		if err != nil || !reflect.DeepEqual(again, kvs) {
			t.Fatalf("round trip %q != %q (%v)", again, kvs, err)
		}
	})
}

// FuzzValues parses arbitrary values as every value type.
func FuzzValues(f *testing.F) {
	f.Add("0x1000")
	f.Fuzz(func(t *testing.T, v string) {
		if n, err := ParseNumber(v); err == nil {
			again, err := ParseNumber(strconv.FormatUint(n, 10))
			if err != nil || again != n {
				t.Fatalf("number %q: %d != %d", v, again, n)
			}
		} else if n != 0 {
			t.Fatal("non-zero number on error")
		}
		if b, err := ParseBinary(v, MaxCHAPChallengeLen); err == nil {
			again, err := ParseBinary(string(AppendHex(nil, b)), MaxCHAPChallengeLen)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("binary %q round trip", v)
			}
		} else if b != nil {
			t.Fatal("non-nil binary on error")
		}
		if q, err := ParseSendTargets(v); err != nil && q != (SendTargetsQuery{}) {
			t.Fatal("non-zero SendTargets on error")
		} else if q.Target != "" && !ValidName(q.Target) {
			t.Fatal("invalid name accepted")
		}
		_, _ = SelectCHAPAlgorithm(v, DefaultCHAPAlgorithms)
	})
}

// FuzzAssembler joins arbitrary text split at arbitrary points, and splits it again.
func FuzzAssembler(f *testing.F) {
	f.Add([]byte("A=1\x00B=2\x00"), uint16(2), uint16(5), uint16(64))
	f.Fuzz(func(t *testing.T, p []byte, cut1, cut2, maxLen uint16) {
		c1 := int(cut1) % (len(p) + 1)
		c2 := c1 + int(cut2)%(len(p)-c1+1)
		a := NewAssembler(int(maxLen))
		limit := int(maxLen)
		if limit == 0 {
			limit = DefaultMaxTextLen
		}
		var got []byte
		var done bool
		var err error
		for i, piece := range [][]byte{p[:c1], p[c1:c2], p[c2:]} {
			got, done, err = a.Add(piece, i < 2)
			if err != nil {
				break
			}
			if done != (i == 2) {
				t.Fatalf("piece %d: complete %v", i, done)
			}
		}
		if len(p) > limit {
			if !errors.Is(err, ErrTextTooLong) || a.Pending() {
				t.Fatalf("%d bytes over %d: %v", len(p), limit, err)
			}
			return
		}
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("joined %q, want %q (%v)", got, p, err)
		}
		var joined []byte
		for rest := p; len(rest) > 0; {
			var seg []byte
			seg, rest = SplitText(rest, int(maxLen)+1)
			if len(seg) == 0 || len(seg) > int(maxLen)+1 {
				t.Fatalf("split piece of %d bytes", len(seg))
			}
			joined = append(joined, seg...)
		}
		if !bytes.Equal(joined, p) {
			t.Fatal("split pieces do not join back")
		}
	})
}

// FuzzNegotiate answers arbitrary key blocks in every stage and session kind.
func FuzzNegotiate(f *testing.F) {
	f.Add([]byte("MaxBurstLength=4096\x00FirstBurstLength=8192\x00"), uint8(1))
	f.Fuzz(func(t *testing.T, p []byte, flags uint8) {
		kvs, err := ParseText(p)
		if err != nil {
			return
		}
		cfg := DefaultConfig()
		if flags&16 != 0 {
			cfg.HeaderDigest, cfg.MaxBurstLength, cfg.FirstBurstLength = DigestCRC32C, 4096, 2048
			cfg.ImmediateData = false
		}
		var session *Params
		if flags&8 != 0 {
			s := DefaultParams()
			session = &s
		}
		n := NewNegotiator(cfg, SessionType(flags>>1&1), session)
		n.SetAuthMethods(AuthSet(flags>>5&3 | 1))
		stage := []Stage{StageSecurity, StageOperational, StageFullFeature}[int(flags>>2&3)%3]
		var out []byte
		if stage == StageFullFeature {
			out, err = n.NegotiateText(kvs, nil)
		} else {
			out, err = n.Negotiate(stage, kvs, nil)
		}
		checkAnswers(t, kvs, out, err)
		if stage == StageOperational {
			n.Offers(nil)
		}
		params, err := n.Finish()
		if err != nil {
			if !isStatus(err, StatusInitiatorError) || params != (Params{}) {
				t.Fatalf("Finish: %v with %+v", err, params)
			}
			return
		}
		checkParams(t, params)
	})
}

// checkAnswers: answers are well-formed text, and every answered key was offered
// (besides the target's MaxRecvDataSegmentLength declaration).
func checkAnswers(t *testing.T, offered []KeyValue, out []byte, err error) {
	t.Helper()
	var lerr *LoginError
	if err != nil && !errors.As(err, &lerr) {
		t.Fatalf("negotiation error %v is not a *LoginError", err)
	}
	answers, perr := ParseText(out)
	if perr != nil {
		t.Fatalf("answers %q do not parse: %v", out, perr)
	}
	for _, a := range answers {
		if _, ok := LookupKey(offered, a.Key); !ok && a.Key != "MaxRecvDataSegmentLength" {
			t.Fatalf("answered %q, never offered", a.Key)
		}
	}
}

func checkParams(t *testing.T, p Params) {
	t.Helper()
	switch {
	case p.FirstBurstLength > p.MaxBurstLength:
		t.Fatalf("FirstBurstLength above MaxBurstLength: %+v", p)
	case p.MaxRecvDataSegmentLength < 512 || p.MaxXmitDataSegmentLength < 512 ||
		p.MaxXmitDataSegmentLength > MaxDataSegmentLength:
		t.Fatalf("segment lengths out of range: %+v", p)
	case p.ErrorRecoveryLevel != 0 || p.IFMarker || p.OFMarker:
		t.Fatalf("unsupported features negotiated: %+v", p)
	case p.MaxConnections == 0 || p.MaxOutstandingR2T == 0 || p.MaxBurstLength < 512:
		t.Fatalf("minimums broken: %+v", p)
	}
}

// FuzzLogin feeds the login state machine arbitrary Login Requests: each is a 48-byte
// header (forced to the Login Request opcode) followed by as much data as its
// DataSegmentLength asks for.
func FuzzLogin(f *testing.F) {
	f.Add(uint8(0), loginSeed(req(StageOperational, StageFullFeature),
		block("InitiatorName", testInit, "TargetName", testIQN)))
	f.Fuzz(func(t *testing.T, flags uint8, p []byte) {
		h := newHooks()
		if flags&1 != 0 {
			h.withCHAP(flags&2 != 0)
		}
		l := NewLogin(h, chapRand())
		for steps := 0; len(p) >= BHSLen && steps < 8; steps++ {
			var b BHS
			copy(b[:], p)
			b[0] = byte(OpLoginRequest) | 0x40
			q, _ := DecodeLoginRequest(&b)
			n := min(int(q.DataSegmentLength), len(p)-BHSLen)
			data := p[BHSLen : BHSLen+n]
			p = p[BHSLen+n:]
			before := l.State()
			r := l.Step(&q, data)
			checkReply(t, before, l.State(), r)
		}
	})
}

func checkReply(t *testing.T, before, after LoginState, r LoginReply) {
	t.Helper()
	h := r.Header
	switch {
	case h.DataSegmentLength != uint32(len(r.Data)) || len(r.Data) > loginMaxData:
		t.Fatalf("data %d bytes, header says %d", len(r.Data), h.DataSegmentLength)
	case h.Transit && h.Continue:
		t.Fatal("response with T and C")
	case r.Failed != (after == LoginStateFailed):
		t.Fatalf("Failed %v in state %s", r.Failed, after)
	case r.Failed && (h.Status.Success() || r.Err == nil || r.Done):
		t.Fatalf("failure reply %+v %v", h, r.Err)
	case !r.Failed && !h.Status.Success():
		t.Fatalf("status %s without Failed", h.Status)
	case r.Done && (after != LoginStateFullFeature || h.TSIH == 0 || !h.Transit ||
		h.NSG != StageFullFeature):
		t.Fatalf("done reply %+v in %s", h, after)
	case (before == LoginStateFullFeature || before == LoginStateFailed) && !r.Failed:
		t.Fatalf("step after %s succeeded", before)
	}
	if _, err := ParseText(r.Data); err != nil && !h.Continue {
		t.Fatalf("response text %q: %v", r.Data, err)
	}
	if r.Done {
		checkParams(t, r.Params)
	}
}

// loginSeed frames one Login Request for FuzzLogin.
func loginSeed(q *LoginRequest, data []byte) []byte {
	var b BHS
	q.DataSegmentLength = uint32(len(data))
	q.Put(&b)
	return append(b[:], data...)
}
