// Package crypt is the encrypted-volume bdev layer: a "crypt" bdev stacked on another bdev
// (its base) that stores every block AES-XTS-256 encrypted, so that the base, its file,
// its disk and any replica of it only ever hold ciphertext.
//
// # What it owns
//
//   - The volume format: a small header at the start of the base (header.go) that makes the
//     volume self-describing, so that a copy or a replica of the base carries everything
//     needed to open it except the key-encryption key (KEK).
//   - The keys: a random 512-bit data key (two independent AES-256 keys, XTS's Key1 and
//     Key2) per volume, stored only wrapped with AES-256-GCM under the KEK, which the
//     operator provides as a key file (kept outside the daemon's data directory) or as a
//     passphrase stretched with argon2id (key.go). A wrong KEK fails GCM's authentication
//     when the volume is opened, and the bdev is not created.
//   - The data path (channel.go): per reactor, an xts.Cipher (OpenSSL through cgo/xts, one
//     cgo call per I/O however many sectors), a pool of per-I/O contexts (bdev.Pool) and
//     ciphertext buffers from the reactor's mem.Core.
//   - The RPCs bdev_crypt_create, bdev_crypt_delete, bdev_crypt_get_key_info and
//     bdev_crypt_rekey (rpc.go). save_config dumps crypt bdevs through the bdev section's
//     generic dump, with Params that hold no secret: a key file's path, never a
//     passphrase or key bytes.
//
// # The format
//
// Tweak: the sector number of each block is its LBA on the crypt bdev (counted from the
// first data block, not from the start of the base), in the volume's block size, as a
// 128-bit little-endian integer: IEEE 1619's data unit sequence number, dm-crypt's
// aes-xts-plain64 with the data segment's start as sector 0 (LUKS2 does the same). The
// block size is fixed at format and recorded in the header, since it is the XTS data
// unit: opening a volume with another would decrypt to garbage.
//
// Layout of the base: header copy A at byte 0, copy B at byte S, data from byte 2S, where
// S = max(4096, block size). Each copy is one 256-byte record (header.go cites every
// offset) padded with zeros to S bytes, so a copy lies inside one 512-byte sector of any
// disk and is written whole or not at all. Two copies because a volume whose only copy
// of its wrapped key sits in one bad sector is lost: open takes copy A, or copy B when
// A is damaged or B's generation is higher. A rekey writes B, then A, each durable before
// the next, so a crash leaves at least one copy valid; both wrap the same data key, so
// the data is readable whichever one survives. Format also zeroes the copies B a former
// volume of another block size left in what becomes data, so that they can never be
// taken for the new volume's. The crypt bdev exposes the base's capacity minus 2S bytes.
//
// A header at the start of the base was chosen over a sidecar metadata file: the volume is
// self-describing, replication of the base ships the wrapped key with the data, and there
// is no second file to lose, back up or keep in step with the first.
//
// # Zeroes and deallocation
//
// Zeroes on the base decrypt to noise, so the layer never lets the base's zeroing show
// through. Write Zeroes is served here: the range is written as encrypted zero blocks, in
// chunks of at most zeroChunkBytes from one ciphertext buffer; it reads back as zeros, as
// the protocols promise. Unmap (NVMe deallocate, SCSI UNMAP) is off by default, as
// dm-crypt's discards are: passing it to the base reveals which blocks hold data. With
// allow_unmap it is passed to the base (a file bdev punches holes and frees the space),
// and the crypt bdev reports UnmapReadsZero false, so that NVMe's DLFEAT says nothing of
// deallocated blocks' contents, SCSI's LBPRZ is 0, and neither target turns a zeroing
// request into a deallocation (engine/nvmf io_cmd.go, engine/scsi io_special.go both ask
// UnmapReadsZero first).
//
// A freshly formatted volume reads as noise until written, as a new LUKS volume does: the
// format writes the header only.
//
// # Who may call it
//
// The daemon registers the RPCs (RegisterRPC) with an Env: each reactor's memory core, a
// reactor for header I/O, and the data directory. Channels, as any bdev's, are the
// protocol targets'. Control-plane calls are safe from any goroutine; a channel is its
// reactor's.
//
// # What it must never do
//
// Write plaintext or a clear key to the base or to any file; log, echo or dump a
// passphrase or key bytes; pass the caller's plaintext buffer (or its fixed-buffer index)
// to the base on a write; allocate on the Go heap per I/O once warm; complete an I/O
// before its children did; let the base's zeroes read back as anything but what they
// decrypt to (no capability it cannot keep).
package crypt
