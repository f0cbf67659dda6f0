package iscsi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// TestCHAPVectors checks CHAPResponse against digests computed independently, with
// Python's hashlib, `openssl dgst -md5` and md5sum over the bytes
// id || secret || challenge (RFC 1994 §4.1), the three agreeing for MD5.
func TestCHAPVectors(t *testing.T) {
	chal := make([]byte, 16)
	for i := range chal {
		chal[i] = byte(i)
	}
	secret := []byte("sluice-secret-12")
	for _, c := range []struct {
		alg       CHAPAlgorithm
		id        byte
		secret    []byte
		challenge []byte
		want      string
	}{
		{CHAPMD5, 1, secret, chal, "02d212c30d6cf08d6017333bc8cad741"},
		{CHAPSHA1, 1, secret, chal, "71a1f250466c16af508453984eb55bda38c4ad79"},
		{CHAPSHA256, 1, secret, chal,
			"2bfe48dfbdfb01957265fc3216e64cb5bfe28c21b86b3ae35db98919ee479e99"},
		{CHAPSHA3256, 1, secret, chal,
			"87de6ef1d2bea5ccd6ad8de616ad2a4d11392d5953e206a7cb783cab210443a1"},
		{CHAPMD5, 0x77, []byte("target-secret-34"), bytes.Repeat([]byte{0xaa}, 16),
			"66178564241b8c585d97865af9e3c48d"},
		{CHAPMD5, 255, []byte("0123456789ab"),
			[]byte{0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe, 0, 0x11, 0x22, 0x33, 0x44,
				0x55, 0x66, 0x77}, "260f3a5cc7617bcdafb6915905cc4f50"},
	} {
		got := hex.EncodeToString(CHAPResponse(c.alg, c.id, c.secret, c.challenge))
		if got != c.want || len(got) != 2*c.alg.Size() {
			t.Errorf("%s id %d: %s, want %s", c.alg, c.id, got, c.want)
		}
	}
}

func TestSelectCHAPAlgorithm(t *testing.T) {
	for _, c := range []struct {
		offer string
		set   CHAPAlgSet
		want  CHAPAlgorithm
	}{
		{"5", DefaultCHAPAlgorithms, CHAPMD5},
		{"8,7,6,5", DefaultCHAPAlgorithms, CHAPSHA3256}, // open-iscsi's order
		{"5,6,7,8", DefaultCHAPAlgorithms, CHAPMD5},     // libiscsi's CHAP test
		{"7,5", NewCHAPAlgSet(CHAPSHA256), CHAPSHA256},
		{"5", NewCHAPAlgSet(CHAPSHA256), 0}, // MD5 refused by policy
		{"56", DefaultCHAPAlgorithms, 0},    // libiscsi: catches targets reading one byte
		{"", DefaultCHAPAlgorithms, 0},
		{"0x5", DefaultCHAPAlgorithms, CHAPMD5},
		{"9,128", DefaultCHAPAlgorithms, 0},
	} {
		got, ok := SelectCHAPAlgorithm(c.offer, c.set)
		if got != c.want || ok != (c.want != 0) {
			t.Errorf("%q: %v %v, want %v", c.offer, got, ok, c.want)
		}
	}
}

func TestValidateCHAPSecrets(t *testing.T) {
	good := []byte("123456789012")
	other := []byte("abcdefghijklmnop")
	for _, c := range []struct {
		i, t []byte
		ok   bool
	}{
		{good, nil, true},
		{good, other, true},
		{[]byte("short"), nil, false},
		{good, []byte("short"), false},
		{bytes.Repeat([]byte{1}, 256), nil, false},
		{good, good, false}, // RFC 7143 §9.2.1: never one secret for both directions
	} {
		if err := ValidateCHAPSecrets(c.i, c.t); (err == nil) != c.ok ||
			(err != nil && !errors.Is(err, ErrCHAPSecret)) {
			t.Errorf("%q/%q: %v", c.i, c.t, err)
		}
	}
}

// chapRand is a deterministic random stream: the identifier, then the challenge.
func chapRand() *bytes.Reader {
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(0x40 + i)
	}
	return bytes.NewReader(b)
}

func secrets(user string, secret []byte) CHAPSecretFunc {
	return func(u string) ([]byte, bool) { return secret, u == user }
}

// chapExchange runs CHAP_A and returns the server and the challenge it sent.
func chapExchange(t *testing.T, policy CHAPPolicy, offer string) (*CHAPServer, byte, []byte) {
	t.Helper()
	c := NewCHAPServer(policy, secrets("alice", []byte("alice-secret-1")), chapRand())
	out, err := c.Step(kv("CHAP_A", offer), nil)
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := ParseText(out)
	if err != nil || len(kvs) != 3 || kvs[0].Key != "CHAP_A" || kvs[1].Key != "CHAP_I" ||
		kvs[2].Key != "CHAP_C" || !strings.HasPrefix(kvs[2].Value, "0x") {
		t.Fatalf("challenge %q %v", out, err)
	}
	id, _ := ParseNumber(kvs[1].Value)
	chal, _ := ParseBinary(kvs[2].Value, MaxCHAPChallengeLen)
	if id != 0x40 || len(chal) < 16 || chal[0] != 0x41 {
		t.Fatalf("id %d challenge %x not from the rand stream", id, chal)
	}
	return c, byte(id), chal
}

func TestCHAPServer(t *testing.T) {
	c, id, chal := chapExchange(t, CHAPPolicy{}, "7,5")
	if c.Algorithm() != CHAPSHA256 || len(chal) != 32 {
		t.Fatalf("%v with a %d-byte challenge", c.Algorithm(), len(chal))
	}
	r := CHAPResponse(CHAPSHA256, id, []byte("alice-secret-1"), chal)
	// CHAP_R may come as hex or base64 (libiscsi's CHAP base64 test).
	b64 := "0b" + strings.TrimRight(b64enc(r), "=")
	out, err := c.Step(kv("CHAP_N", "alice", "CHAP_R", b64), nil)
	if err != nil || len(out) != 0 || !c.Done() || c.User() != "alice" {
		t.Fatalf("%q %v", out, err)
	}
	if _, err := c.Step(kv("CHAP_A", "5"), nil); !isStatus(err, StatusAuthenticationFailure) {
		t.Fatalf("key after success: %v", err)
	}
}

func TestCHAPMutual(t *testing.T) {
	policy := CHAPPolicy{TargetUser: "iqn.2024-01.io.sluice:t", TargetSecret: []byte(
		"target-secret-34"), MutualRequired: true}
	c, id, chal := chapExchange(t, policy, "5")
	r := CHAPResponse(CHAPMD5, id, []byte("alice-secret-1"), chal)
	ichal := bytes.Repeat([]byte{0xaa}, 16)
	out, err := c.Step(kv("CHAP_N", "alice", "CHAP_R", string(AppendHex(nil, r)),
		"CHAP_I", "119", "CHAP_C", string(AppendHex(nil, ichal))), nil)
	want := "CHAP_N=iqn.2024-01.io.sluice:t;CHAP_R=0x66178564241b8c585d97865af9e3c48d;"
	if err != nil || show(out) != want || !c.Done() {
		t.Fatalf("%q %v, want %q", show(out), err, want)
	}
}

func TestCHAPFailures(t *testing.T) {
	policy := CHAPPolicy{TargetUser: "t", TargetSecret: []byte("target-secret-34")}
	good := func(id byte, chal []byte) string {
		return string(AppendHex(nil, CHAPResponse(CHAPMD5, id, []byte("alice-secret-1"), chal)))
	}
	for _, c := range []struct {
		name   string
		policy CHAPPolicy
		keys   func(id byte, chal []byte) []KeyValue
		st     Status
	}{
		{"wrong secret", policy, func(id byte, chal []byte) []KeyValue {
			r := CHAPResponse(CHAPMD5, id, []byte("wrong-secret-1"), chal)
			return kv("CHAP_N", "alice", "CHAP_R", string(AppendHex(nil, r)))
		}, StatusAuthenticationFailure},
		{"unknown user", policy, func(id byte, chal []byte) []KeyValue {
			return kv("CHAP_N", "bob", "CHAP_R", good(id, chal))
		}, StatusAuthenticationFailure},
		{"short response", policy, func(id byte, chal []byte) []KeyValue {
			return kv("CHAP_N", "alice", "CHAP_R", good(id, chal)[:20])
		}, StatusAuthenticationFailure},
		{"missing CHAP_R", policy, func(byte, []byte) []KeyValue {
			return kv("CHAP_N", "alice")
		}, StatusMissingParameter},
		{"CHAP_C without CHAP_I", policy, func(id byte, chal []byte) []KeyValue {
			return kv("CHAP_N", "alice", "CHAP_R", good(id, chal), "CHAP_C", "0x0102")
		}, StatusMissingParameter},
		{"reflected challenge", policy, func(id byte, chal []byte) []KeyValue {
			return kv("CHAP_N", "alice", "CHAP_R", good(id, chal), "CHAP_I", "1",
				"CHAP_C", string(AppendHex(nil, chal)))
		}, StatusAuthenticationFailure},
		{"mutual without target secret", CHAPPolicy{}, func(id byte, chal []byte) []KeyValue {
			return kv("CHAP_N", "alice", "CHAP_R", good(id, chal), "CHAP_I", "1",
				"CHAP_C", "0x0102")
		}, StatusAuthenticationFailure},
		{"mutual required", CHAPPolicy{MutualRequired: true, TargetSecret: []byte(
			"target-secret-34")}, func(id byte, chal []byte) []KeyValue {
			return kv("CHAP_N", "alice", "CHAP_R", good(id, chal))
		}, StatusAuthenticationFailure},
		{"same secret both ways", CHAPPolicy{TargetSecret: []byte("alice-secret-1")},
			func(id byte, chal []byte) []KeyValue {
				return kv("CHAP_N", "alice", "CHAP_R", good(id, chal), "CHAP_I", "1",
					"CHAP_C", "0x0102")
			}, StatusAuthenticationFailure},
		{"CHAP_A again", policy, func(byte, []byte) []KeyValue {
			return kv("CHAP_A", "5")
		}, StatusAuthenticationFailure},
	} {
		s, id, chal := chapExchange(t, c.policy, "5")
		if _, err := s.Step(c.keys(id, chal), nil); !isStatus(err, c.st) || s.Done() {
			t.Errorf("%s: %v, want %s", c.name, err, c.st)
		}
		if _, err := s.Step(nil, nil); err == nil {
			t.Errorf("%s: step after failure", c.name)
		}
	}
	for _, offer := range []string{"56", ""} { // libiscsi's CHAP.Invalid
		s := NewCHAPServer(CHAPPolicy{}, secrets("a", nil), chapRand())
		out, err := s.Step(kv("CHAP_A", offer), nil)
		if !isStatus(err, StatusAuthenticationFailure) || show(out) != "CHAP_A=Reject;" {
			t.Errorf("CHAP_A=%s: %q %v", offer, show(out), err)
		}
	}
	s := NewCHAPServer(CHAPPolicy{}, secrets("a", nil), bytes.NewReader(nil))
	if _, err := s.Step(kv("CHAP_A", "5"), nil); !isStatus(err, StatusTargetError) {
		t.Fatalf("random failure: %v", err)
	}
}

func b64enc(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
