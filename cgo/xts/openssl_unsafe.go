//go:build cgo && linux

package xts

/*
#cgo pkg-config: libcrypto
#cgo noescape sluice_xts_crypt
#cgo nocallback sluice_xts_crypt
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

// The provider API (EVP_CIPHER_CTX_get_key_length, XTS's duplicate-key check) is 3.0's.
#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "cgo/xts needs OpenSSL 3.0 or later"
#endif

enum { SLUICE_XTS_IV_LEN = 16 };

// sluice_xts is one key's two contexts, each keyed once at setup: a data path call only
// swaps the IV. Two contexts rather than one re-keyed per direction, since re-keying
// expands both AES key schedules again where an IV swap is a 16-byte copy.
struct sluice_xts {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

// sluice_xts_free releases both contexts. EVP_CIPHER_CTX_free cleanses the provider's
// context, so the expanded keys do not outlive the Cipher in freed memory.
static void sluice_xts_free(struct sluice_xts *x) {
	if (x == NULL) {
		return;
	}
	EVP_CIPHER_CTX_free(x->enc);
	EVP_CIPHER_CTX_free(x->dec);
	free(x);
}

// sluice_xts_fail takes the first queued error for the caller and empties the thread's
// queue. It runs inside the same C call as the failure, because the queue is per OS
// thread and the calling goroutine may run on another thread after the call returns.
static struct sluice_xts *sluice_xts_fail(struct sluice_xts *x, unsigned long *code) {
	*code = ERR_get_error();
	ERR_clear_error();
	sluice_xts_free(x);
	return NULL;
}

static struct sluice_xts *sluice_xts_alloc(const char **op) {
	struct sluice_xts *x = calloc(1, sizeof(*x));
	*op = "calloc";
	if (x == NULL) {
		return NULL;
	}
	*op = "EVP_CIPHER_CTX_new";
	x->enc = EVP_CIPHER_CTX_new();
	x->dec = EVP_CIPHER_CTX_new();
	if (x->enc == NULL || x->dec == NULL) {
		sluice_xts_free(x);
		return NULL;
	}
	return x;
}

// sluice_xts_new keys both contexts with key (Key1 || Key2, key_len bytes). On failure it
// returns NULL with *op naming the failed call and *code holding OpenSSL's error, or 0.
static struct sluice_xts *sluice_xts_new(const unsigned char *key, int key_len,
		const char **op, unsigned long *code) {
	const EVP_CIPHER *cipher = key_len == 64 ? EVP_aes_256_xts() : EVP_aes_128_xts();
	struct sluice_xts *x = sluice_xts_alloc(op);
	if (x == NULL) {
		return sluice_xts_fail(x, code);
	}
	*op = "EVP_CipherInit_ex";
	if (EVP_CipherInit_ex(x->enc, cipher, NULL, key, NULL, 1) != 1 ||
			EVP_CipherInit_ex(x->dec, cipher, NULL, key, NULL, 0) != 1) {
		return sluice_xts_fail(x, code);
	}
	// The Go side builds 16-byte tweaks and hands over whole keys: a libcrypto that
	// disagrees on either must fail here, not encrypt under something else.
	*op = "EVP_CIPHER_CTX_get_key_length";
	if (EVP_CIPHER_CTX_get_key_length(x->enc) != key_len ||
			EVP_CIPHER_CTX_get_iv_length(x->enc) != SLUICE_XTS_IV_LEN) {
		return sluice_xts_fail(x, code);
	}
	return x;
}

// sluice_xts_clone copies both keyed contexts, so that another reactor gets its own
// state without the key passing through Go again.
static struct sluice_xts *sluice_xts_clone(const struct sluice_xts *src, const char **op,
		unsigned long *code) {
	struct sluice_xts *x = sluice_xts_alloc(op);
	if (x == NULL) {
		return sluice_xts_fail(x, code);
	}
	*op = "EVP_CIPHER_CTX_copy";
	if (EVP_CIPHER_CTX_copy(x->enc, src->enc) != 1 || EVP_CIPHER_CTX_copy(x->dec, src->dec) != 1) {
		return sluice_xts_fail(x, code);
	}
	return x;
}

// sluice_xts_crypt runs XTS over len bytes, one data unit of sector_size bytes at a time,
// the tweak of unit i being sector+i as a little-endian 128-bit integer (IEEE 1619-2007,
// 5.1; dm-crypt's plain64). The loop lives here so that an I/O of any number of sectors
// costs one cgo call. Each unit sets its IV anew: OpenSSL's XTS takes one IV per update
// and would reuse it for the next one otherwise. Returns 0, or -1 with the thread's error
// queue emptied. dst and src are never retained.
static int sluice_xts_crypt(const struct sluice_xts *x, int enc, uint8_t *dst,
		const uint8_t *src, size_t len, size_t sector_size, uint64_t sector) {
	EVP_CIPHER_CTX *ctx = enc ? x->enc : x->dec;
	unsigned char iv[SLUICE_XTS_IV_LEN] = {0};
	for (size_t off = 0; off < len; off += sector_size, sector++) {
		for (int b = 0; b < 8; b++) {
			iv[b] = (unsigned char)(sector >> (8 * b));
		}
		int outl = 0;
		if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, enc) != 1 ||
				EVP_CipherUpdate(ctx, dst + off, &outl, src + off, (int)sector_size) != 1 ||
				outl != (int)sector_size) {
			ERR_clear_error();
			return -1;
		}
	}
	return 0;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Backend names the implementation this build links, so that the crypt layer can report
// a volume that runs on the slow pure-Go path.
const Backend = "openssl"

// Cipher is one volume's XTS key, expanded once into libcrypto's memory: an encrypt and a
// decrypt EVP_CIPHER_CTX, each keyed at New; a call changes only their IV. The key itself
// is not kept in Go memory.
//
// A Cipher is not safe for concurrent use: each reactor that serves the volume uses its own
// (Clone one per reactor, or call New per reactor with the same key).
//
// Postconditions of New and Clone: the caller owes Close, which frees and cleanses the
// contexts at a known time. A Cipher that becomes unreachable unclosed is freed by a
// runtime cleanup as a safety net, at some later GC; a leak is then bounded, not silent
// forever, but the key material lingers until that GC.
type Cipher struct {
	x       *C.struct_sluice_xts // nil once closed
	cleanup runtime.Cleanup
}

// New makes a Cipher for key: Key1 (the data key) followed by Key2 (the tweak key),
// KeySize256 bytes for AES-256-XTS or KeySize128 for AES-128-XTS. It refuses equal halves
// (ErrDuplicateKeyHalves). The caller keeps ownership of key and should wipe its copy
// when it no longer needs it; New copies nothing of it into Go memory.
//
// New is a setup call (it allocates, and costs microseconds): never call it per I/O.
func New(key []byte) (*Cipher, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var op *C.char
	var code C.ulong
	// key holds bytes only, and C copies it into the contexts before returning.
	keyPtr := (*C.uchar)(unsafe.Pointer(unsafe.SliceData(key)))
	x := C.sluice_xts_new(keyPtr, C.int(len(key)), &op, &code)
	if x == nil {
		return nil, fmt.Errorf("xts: new aes-%d-xts cipher: %w", len(key)*4, opensslError(op, code))
	}
	return track(x), nil
}

// Clone returns a second Cipher with the same key and its own contexts, for another
// reactor. It is a setup call, like New.
//
// Preconditions: runs on the goroutine that owns c.
func (c *Cipher) Clone() (*Cipher, error) {
	if c.x == nil {
		return nil, ErrClosed
	}
	var op *C.char
	var code C.ulong
	x := C.sluice_xts_clone(c.x, &op, &code)
	runtime.KeepAlive(c)
	if x == nil {
		return nil, fmt.Errorf("xts: clone cipher: %w", opensslError(op, code))
	}
	return track(x), nil
}

// Close frees and cleanses the contexts. A closed Cipher refuses every call with
// ErrClosed; closing it again does nothing.
//
// Preconditions: runs on the goroutine that owns c, with no call on c in progress.
func (c *Cipher) Close() error {
	if c.x == nil {
		return nil
	}
	c.cleanup.Stop()
	C.sluice_xts_free(c.x)
	c.x = nil
	return nil
}

func (c *Cipher) crypt(dst, src []byte, firstSector uint64, sectorSize int, encrypt bool) error {
	if c.x == nil {
		return ErrClosed
	}
	if len(src) == 0 {
		return nil
	}
	enc := C.int(0)
	if encrypt {
		enc = 1
	}
	// dst and src hold bytes only (off-heap in production, Go memory in tests) and C keeps
	// neither, so cgo's pointer rules hold; noescape keeps a Go buffer from escaping.
	rc := C.sluice_xts_crypt(c.x, enc,
		(*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(dst))),
		(*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(src))),
		C.size_t(len(src)), C.size_t(sectorSize), C.uint64_t(firstSector))
	// Were c unreachable during the call, its cleanup could free the contexts under it.
	runtime.KeepAlive(c)
	if rc != 0 {
		return ErrOpenSSL
	}
	return nil
}

// track arms the safety-net cleanup. It receives the C pointer, not c, since a cleanup
// that reached c would keep c alive forever.
func track(x *C.struct_sluice_xts) *Cipher {
	c := &Cipher{x: x}
	c.cleanup = runtime.AddCleanup(c, freeContexts, x)
	return c
}

func freeContexts(x *C.struct_sluice_xts) { C.sluice_xts_free(x) }

func opensslError(op *C.char, code C.ulong) error {
	e := &OpenSSLError{Op: C.GoString(op), Code: uint64(code)}
	if code != 0 {
		var buf [256]C.char
		C.ERR_error_string_n(code, &buf[0], C.size_t(len(buf)))
		e.Reason = C.GoString(&buf[0])
	}
	return e
}
