// Package nvme owns the NVMe and NVMe/TCP wire formats: the NVMe/TCP PDU headers and
// their framing rules, CRC32C digests, submission and completion queue entries, status
// codes, the Fabrics command set (Connect, Property Get/Set), Identify data structures,
// log pages, Set/Get Features encodings, and the reservation commands (Register,
// Acquire, Release, Report), their data structures and the reservation notification log.
//
// Who calls it: the NVMe-oF target (engine/nvmf) and the Go NVMe/TCP initiator
// (engine/nvmf/host). Every codec therefore has both an encoder and a decoder, and every
// decoder has a fuzz target under testdata/fuzz.
//
// What it must never do:
//   - I/O of any kind, goroutines, timers, logging, or touching reactor state. Callers
//     hand in byte slices or fixed-size arrays and get values back.
//   - Import anything outside the standard library (engine/proto is a leaf).
//   - Allocate on the hot path. PDU header decode/encode, the framing check
//     ([CommonHeader.Layout]), SQE accessors, CQE encoding and digests write into caller
//     memory, use fixed-size arrays, and return preallocated errors; tests assert
//     testing.AllocsPerRun == 0 for them. Control-path codecs (Connect data, Identify,
//     log pages) may allocate where they return strings or slices.
//
// Byte order is little-endian throughout. Comments cite byte offsets ("@8" means byte 8
// from the start of the structure) and the specification sections they come from:
//   - "TCP" is the NVMe/TCP Transport Specification 1.0 (formerly NVMe-oF 1.1 §7.4),
//   - "Base" is the NVM Express Base Specification 2.0,
//   - "NVM" is the NVM Command Set Specification 1.0,
//   - "Fabrics" is NVMe over Fabrics 1.1 as folded into Base 2.0 §3.3 and §6.
//
// Section numbers were written from those revisions and may drift between spec
// releases; the Figure names and the byte offsets are the stable references. Offsets
// were cross-checked against SPDK's nvme_spec.h/nvmf_spec.h, Linux's
// include/linux/nvme.h and nvme-tcp.h, and FreeBSD's nvmf headers.
//
// Protocol errors found while decoding are reported as values the caller puts on the
// wire: a [PDUError] carries the TermReq FES and FEI, a [ConnectDataError] carries the
// Connect "invalid parameter" offset, and command failures are [Status] values.
package nvme
