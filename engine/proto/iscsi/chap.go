package iscsi

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// CHAPAlgorithm is a CHAP_A value: a number from the IANA "PPP Authentication
// Algorithms" registry that RFC 7143 §12.1.3 points to. MD5 is 5 (RFC 1994); open-iscsi
// (>= 2.1.2), libiscsi, LIO and SCST also use 6 for SHA-1, 7 for SHA-256 and 8 for
// SHA3-256, and open-iscsi offers them as a list such as "CHAP_A=8,7,6,5"
// (open-iscsi/open-iscsi#180: targets that accept only a lone "5" break).
type CHAPAlgorithm uint8

// CHAP algorithms.
const (
	CHAPMD5     CHAPAlgorithm = 5
	CHAPSHA1    CHAPAlgorithm = 6
	CHAPSHA256  CHAPAlgorithm = 7
	CHAPSHA3256 CHAPAlgorithm = 8
)

// Size is the length of the algorithm's response (its digest size), 0 if unknown.
func (a CHAPAlgorithm) Size() int {
	switch a {
	case CHAPMD5:
		return md5.Size
	case CHAPSHA1:
		return sha1.Size
	case CHAPSHA256, CHAPSHA3256:
		return 32
	}
	return 0
}

// String names the algorithm.
func (a CHAPAlgorithm) String() string {
	switch a {
	case CHAPMD5:
		return "MD5"
	case CHAPSHA1:
		return "SHA1"
	case CHAPSHA256:
		return "SHA256"
	case CHAPSHA3256:
		return "SHA3-256"
	}
	return "CHAPAlgorithm(" + strconv.Itoa(int(a)) + ")"
}

// CHAPAlgSet is a set of CHAP algorithms.
type CHAPAlgSet uint16

// DefaultCHAPAlgorithms is every algorithm this package implements.
const DefaultCHAPAlgorithms = CHAPAlgSet(1<<CHAPMD5 | 1<<CHAPSHA1 | 1<<CHAPSHA256 |
	1<<CHAPSHA3256)

// NewCHAPAlgSet builds a set.
func NewCHAPAlgSet(algs ...CHAPAlgorithm) CHAPAlgSet {
	var s CHAPAlgSet
	for _, a := range algs {
		if a.Size() != 0 {
			s |= 1 << a
		}
	}
	return s
}

// Has reports whether the set holds a.
func (s CHAPAlgSet) Has(a CHAPAlgorithm) bool { return a < 16 && a.Size() != 0 && s&(1<<a) != 0 }

// CHAPResponse computes a CHAP response: the hash of the identifier, the secret and the
// challenge, concatenated (RFC 1994 §4.1; RFC 7143 §12.1.3 uses it both ways).
//
// Preconditions: a.Size() != 0.
func CHAPResponse(a CHAPAlgorithm, id byte, secret, challenge []byte) []byte {
	var h interface {
		io.Writer
		Sum([]byte) []byte
	}
	switch a {
	case CHAPMD5:
		h = md5.New()
	case CHAPSHA1:
		h = sha1.New()
	case CHAPSHA256:
		h = sha256.New()
	case CHAPSHA3256:
		h = sha3.New256()
	default:
		panic("iscsi: CHAPResponse with an unknown algorithm")
	}
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	return h.Sum(nil)
}

// SelectCHAPAlgorithm returns the first algorithm of an initiator's CHAP_A list that the
// set holds: list negotiation honours the offerer's order of preference (RFC 7143
// §6.2.1), and the target narrows the choice through its set (drop MD5 to require a
// stronger hash).
func SelectCHAPAlgorithm(offer string, set CHAPAlgSet) (CHAPAlgorithm, bool) {
	for v := range ListValues(offer) {
		n, err := ParseNumber(v)
		if err == nil && n < 16 && set.Has(CHAPAlgorithm(n)) {
			return CHAPAlgorithm(n), true
		}
	}
	return 0, false
}

// CHAP limits.
const (
	// MaxCHAPChallengeLen: "C and R are large-binary-values and their binary length
	// ... MUST NOT exceed 1024 bytes" (RFC 7143 §12.1.3).
	MaxCHAPChallengeLen = 1024
	// MinCHAPSecretLen: the target refuses to configure secrets shorter than 12 bytes
	// (96 bits). RFC 7143 §9.2.1 warns that CHAP over an unencrypted channel falls to
	// off-line dictionary attacks unless secrets are long and random, and the
	// Microsoft initiator will not take fewer than 12 characters.
	MinCHAPSecretLen = 12
	// MaxCHAPSecretLen: 255 bytes, what libiscsi and open-iscsi can hold. The Microsoft
	// initiator stops at 16 characters: 12-16 works with every initiator.
	MaxCHAPSecretLen = 255
	// minCHAPChallengeLen is the challenge the target sends at the least: 16 bytes, or
	// the digest size when larger (what LIO sends).
	minCHAPChallengeLen = 16
)

// ErrCHAPSecret reports a CHAP secret configuration the target refuses.
var ErrCHAPSecret = errors.New("iscsi: invalid CHAP secret")

// ValidateCHAPSecrets checks the secrets configured for a target: the secret the
// initiator proves (required) and the target's own secret for mutual CHAP (optional).
// Each must hold 12-255 bytes, and they must differ: a secret used to authenticate an
// initiator must never authenticate a target (RFC 7143 §9.2.1), or an attacker could
// reflect the target's challenge back at it.
func ValidateCHAPSecrets(initiator, target []byte) error {
	check := func(s []byte) error {
		if len(s) < MinCHAPSecretLen || len(s) > MaxCHAPSecretLen {
			return fmt.Errorf("%w: %d bytes, want %d to %d", ErrCHAPSecret, len(s),
				MinCHAPSecretLen, MaxCHAPSecretLen)
		}
		return nil
	}
	if err := check(initiator); err != nil {
		return err
	}
	if len(target) == 0 {
		return nil
	}
	if err := check(target); err != nil {
		return err
	}
	if bytes.Equal(initiator, target) {
		return fmt.Errorf("%w: mutual CHAP secret equals the initiator's", ErrCHAPSecret)
	}
	return nil
}

// CHAPPolicy is a target's CHAP configuration for one initiator or target.
type CHAPPolicy struct {
	// Algorithms the target accepts; zero means DefaultCHAPAlgorithms.
	Algorithms CHAPAlgSet
	// TargetUser and TargetSecret answer an initiator's challenge (mutual CHAP): the
	// target sends CHAP_N=TargetUser and CHAP_R computed with TargetSecret. Without a
	// TargetSecret, an initiator that challenges the target fails authentication.
	TargetUser   string
	TargetSecret []byte
	// MutualRequired fails initiators that do not challenge the target.
	MutualRequired bool
	// TargetCredentials, when set, replaces TargetUser and TargetSecret with the
	// credentials paired with the initiator's CHAP user (SPDK's auth groups pair a
	// user/secret with a muser/msecret). It is asked only after the initiator proved
	// its own secret.
	TargetCredentials func(initiatorUser string) (user string, secret []byte)
}

// CHAPSecretFunc returns the secret of the CHAP user an initiator names in CHAP_N.
type CHAPSecretFunc func(user string) (secret []byte, ok bool)

// chapState is the target's progress through one CHAP exchange.
type chapState uint8

const (
	chapWaitAlgorithm chapState = iota // AuthMethod=CHAP agreed, waiting for CHAP_A
	chapWaitResponse                   // CHAP_A/I/C sent, waiting for CHAP_N and CHAP_R
	chapDone                           // the initiator proved its secret
	chapFailed
)

// CHAPServer is the target side of one CHAP exchange during login (RFC 7143 §12.1.3):
//
//	I->T  CHAP_A=<A1,A2,...>
//	T->I  CHAP_A=<A> CHAP_I=<I> CHAP_C=<C>
//	I->T  CHAP_N=<N> CHAP_R=<R>              [CHAP_I=<I'> CHAP_C=<C'> for mutual CHAP]
//	T->I                                     [CHAP_N=<N'> CHAP_R=<R'>]
//
// It draws the identifier and challenge from the io.Reader it is given (crypto/rand in
// the target, a fixed stream in tests). It is not safe for concurrent use.
type CHAPServer struct {
	policy    CHAPPolicy
	lookup    CHAPSecretFunc
	rand      io.Reader
	state     chapState
	alg       CHAPAlgorithm
	id        byte
	challenge []byte
	user      string
}

// NewCHAPServer starts a CHAP exchange.
func NewCHAPServer(policy CHAPPolicy, lookup CHAPSecretFunc, rand io.Reader) *CHAPServer {
	if policy.Algorithms == 0 {
		policy.Algorithms = DefaultCHAPAlgorithms
	}
	return &CHAPServer{policy: policy, lookup: lookup, rand: rand}
}

// Done reports whether the initiator authenticated.
func (c *CHAPServer) Done() bool { return c.state == chapDone }

// User is the CHAP_N the initiator authenticated as.
func (c *CHAPServer) User() string { return c.user }

// Algorithm is the algorithm selected from CHAP_A (0 before).
func (c *CHAPServer) Algorithm() CHAPAlgorithm { return c.alg }

func chapFail(st Status, key, msg string) *LoginError {
	return loginErr(st, key, errors.New("chap: "+msg))
}

// Step takes the CHAP keys of one Login Request (CHAP_A, CHAP_I, CHAP_C, CHAP_N,
// CHAP_R; the caller filters the rest out) and appends the target's CHAP keys to dst.
// A failure is a *LoginError: 0201 (authentication failure) for a wrong name, secret,
// algorithm list, response or mutual-CHAP setup, and for a reflected challenge; 0207
// (missing parameter) when CHAP_N or CHAP_R is missing, or CHAP_C without CHAP_I;
// 0300 if the random source fails. After a failure every Step fails.
func (c *CHAPServer) Step(kvs []KeyValue, dst []byte) ([]byte, error) {
	switch c.state {
	case chapWaitAlgorithm:
		if len(kvs) == 0 {
			return dst, nil // the PDU that agreed on AuthMethod=CHAP
		}
		return c.challengeStep(kvs, dst)
	case chapWaitResponse:
		return c.responseStep(kvs, dst)
	case chapDone:
		if len(kvs) == 0 {
			return dst, nil
		}
		c.state = chapFailed
		return dst, chapFail(StatusAuthenticationFailure, kvs[0].Key,
			"key after authentication completed")
	}
	return dst, chapFail(StatusAuthenticationFailure, "", "exchange already failed")
}

func (c *CHAPServer) challengeStep(kvs []KeyValue, dst []byte) ([]byte, error) {
	c.state = chapFailed
	offer, ok := LookupKey(kvs, "CHAP_A")
	if !ok || len(kvs) != 1 {
		return dst, chapFail(StatusAuthenticationFailure, kvs[0].Key,
			"expected CHAP_A alone")
	}
	alg, ok := SelectCHAPAlgorithm(offer, c.policy.Algorithms)
	if !ok {
		// SPDK and LIO answer Reject inside the failed Login Response too.
		dst = AppendKey(dst, "CHAP_A", ValueReject)
		return dst, chapFail(StatusAuthenticationFailure, "CHAP_A",
			"no acceptable algorithm in "+strconv.Quote(offer))
	}
	buf := make([]byte, 1+max(minCHAPChallengeLen, alg.Size()))
	if _, err := io.ReadFull(c.rand, buf); err != nil {
		return dst, loginErr(StatusTargetError, "CHAP_C", fmt.Errorf("chap: random: %w", err))
	}
	c.alg, c.id, c.challenge = alg, buf[0], buf[1:]
	dst = AppendKeyNumber(dst, "CHAP_A", uint64(alg))
	dst = AppendKeyNumber(dst, "CHAP_I", uint64(c.id))
	dst = append(dst, "CHAP_C="...)
	dst = append(AppendHex(dst, c.challenge), 0)
	c.state = chapWaitResponse
	return dst, nil
}

func (c *CHAPServer) responseStep(kvs []KeyValue, dst []byte) ([]byte, error) {
	c.state = chapFailed
	for _, kv := range kvs {
		if kv.Key == "CHAP_A" {
			return dst, chapFail(StatusAuthenticationFailure, kv.Key, "CHAP_A repeated")
		}
	}
	name, okN := LookupKey(kvs, "CHAP_N")
	resp, okR := LookupKey(kvs, "CHAP_R")
	if !okN || !okR {
		return dst, chapFail(StatusMissingParameter, "CHAP_R", "CHAP_N or CHAP_R missing")
	}
	secret, ok := c.lookup(name)
	if !ok || len(secret) == 0 {
		return dst, chapFail(StatusAuthenticationFailure, "CHAP_N", "unknown user")
	}
	got, err := ParseBinary(resp, MaxCHAPChallengeLen)
	want := CHAPResponse(c.alg, c.id, secret, c.challenge)
	if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
		return dst, chapFail(StatusAuthenticationFailure, "CHAP_R", "wrong response")
	}
	if f := c.policy.TargetCredentials; f != nil {
		c.policy.TargetUser, c.policy.TargetSecret = f(name)
	}
	dst, err = c.mutualStep(kvs, secret, dst)
	if err != nil {
		return dst, err
	}
	c.user = name
	c.state = chapDone
	return dst, nil
}

// mutualStep answers the initiator's challenge, once the initiator has proved itself:
// the target never computes a response for an unauthenticated peer.
func (c *CHAPServer) mutualStep(kvs []KeyValue, secret, dst []byte) ([]byte, error) {
	idv, okI := LookupKey(kvs, "CHAP_I")
	chal, okC := LookupKey(kvs, "CHAP_C")
	switch {
	case !okI && !okC:
		if c.policy.MutualRequired {
			return dst, chapFail(StatusAuthenticationFailure, "CHAP_C",
				"mutual CHAP required")
		}
		return dst, nil
	case !okI || !okC:
		return dst, chapFail(StatusMissingParameter, "CHAP_I", "CHAP_I and CHAP_C go together")
	case len(c.policy.TargetSecret) == 0:
		return dst, chapFail(StatusAuthenticationFailure, "CHAP_C",
			"mutual CHAP asked but the target has no secret")
	case subtle.ConstantTimeCompare(c.policy.TargetSecret, secret) == 1:
		// RFC 7143 §9.2.1: one secret must never authenticate both directions.
		return dst, chapFail(StatusAuthenticationFailure, "CHAP_C",
			"target and initiator secrets are equal")
	}
	id, err := ParseNumber(idv)
	if err != nil || id > 255 {
		return dst, chapFail(StatusAuthenticationFailure, "CHAP_I", "bad identifier")
	}
	challenge, err := ParseBinary(chal, MaxCHAPChallengeLen)
	if err != nil {
		return dst, chapFail(StatusAuthenticationFailure, "CHAP_C", "bad challenge")
	}
	if bytes.Equal(challenge, c.challenge) {
		// RFC 7143 §12.1.3: the target MUST refuse its own challenge sent back
		// (reflection) and close the connection.
		return dst, chapFail(StatusAuthenticationFailure, "CHAP_C", "reflected challenge")
	}
	r := CHAPResponse(c.alg, byte(id), c.policy.TargetSecret, challenge)
	dst = AppendKey(dst, "CHAP_N", c.policy.TargetUser)
	dst = append(dst, "CHAP_R="...)
	return append(AppendHex(dst, r), 0), nil
}
