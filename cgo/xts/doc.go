// Package xts is sluice's binding to OpenSSL's AES-XTS (libcrypto's EVP interface): it
// encrypts and decrypts whole block-device sectors for the encrypted-volume (crypt) bdev,
// with the tweak of each sector its number, as IEEE 1619 and dm-crypt's aes-xts-plain64
// define it, so that a volume's ciphertext is the same bytes whichever build wrote it.
//
// What it owns: a Cipher, one data key expanded into two libcrypto contexts (encrypt and
// decrypt) in C memory, keyed once at New; and the sector loop. EncryptSectors and
// DecryptSectors make one cgo call per I/O whatever its number of sectors (a cgo call costs
// about 30 ns here), and allocate nothing. OpenSSL is used rather than
// golang.org/x/crypto/xts because it is an order of magnitude faster for the same bytes
// (4.3-5.2 GB/s a core against 0.26-0.36 GB/s with 4 KiB sectors on these machines);
// BenchmarkXTSOpenSSL* beside BenchmarkXTSGo* keeps that choice honest.
//
// Each sector costs OpenSSL an IV reset (EVP_CipherInit_ex) of about 150 ns on top of the
// cipher work, so 512-byte sectors run at about half the speed of 4 KiB ones: the crypt
// layer should encrypt in 4 KiB sectors wherever the volume's block size allows, as
// dm-crypt's sector_size option does.
//
// Who may call it: the crypt bdev layer, one Cipher per volume per reactor, each used only
// on its reactor (Clone makes a reactor's copy). The buffers it is given are the engine's
// off-heap I/O buffers, or Go memory in tests; either way they hold bytes, never Go
// pointers.
//
// What it must never do: retain a buffer after a call returns, or keep the key in Go memory
// (the cgo build hands it to libcrypto and keeps nothing; the caller wipes its own copy);
// allocate, log or format on the per-I/O path (per-I/O errors are preallocated sentinels);
// accept equal key halves; let a tweak wrap past sector 2^64-1. Key wrapping with the
// key-encryption key, key storage and key exchange belong to the crypt layer and to
// replication, not here.
//
// Without cgo (CGO_ENABLED=0) the same API runs on golang.org/x/crypto/xts (xts_nocgo.go),
// producing identical output ten or more times slower: enough to build, test and read a
// volume, not to serve one. Backend says which build is linked.
package xts
