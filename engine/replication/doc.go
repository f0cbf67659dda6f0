// Package replication replicates volumes between storage nodes: partnerships over an
// SSH tunnel with port forwards at pre-established offsets (US10944819), the exchange
// of an encrypted volume's keys through that tunnel, the replica bdev layer that ships
// every write, synchronously or through a bounded journal, the resynchronization of
// dirty regions, promotion of the partner's copy, and the proxy that lets a partner
// sit behind a public network (US11233850; the agent that configures it is
// tools/sluice-agent).
//
// # Partnerships and ports
//
// A partnership is made, on each side, from the remote address, a base port and the
// other side's public key (replication_partnership_create). The replicating node (A,
// role dial) connects out; its partner (B, role listen) listens on the base port only.
// Authentication is by key pair both ways: B admits only A's key under the
// partnership's name, A accepts only B's host key (identity.go; each node's Ed25519 key
// lives in <data>/replication/id_ed25519). Every link is a direct-tcpip channel inside
// the tunnel addressed to 127.0.0.1:base+offset, which B serves itself; no socket
// listens on a derived port on either side, so a link is reachable only through the
// tunnel (ports.go, tunnel.go):
//
//	offset  link     what travels                                  who opens it
//	     0  tunnel   the SSH connection (B's only listener)        A dials
//	     1  control  hello (version, partnership); open while up  A, once per tunnel
//	     2  data     one channel per volume: volume_open/state,    A, per volume
//	                 writes, flushes, sync markers; acks back
//	     3  keys     key_offer → key_ack, per encrypted volume     A, before its data
//
// The offsets are a parameter (default 1, 2, 3). A derived port above 65535, two links
// on one port, a port another listener holds on B, or a range overlapping another
// listening partnership's is a setup error (ErrPorts). Teardown closes every link,
// the tunnel and B's listener. A keepalive every 500 ms, dead after 3 s unanswered,
// detects a partition that TCP would take minutes to notice; A then reconnects with
// a backoff capped at 2 s.
//
// # Frames
//
// Links carry msgpack frames (frame.go, fuzzed by FuzzFrame) behind a 4-byte length,
// checked against MaxFrameBytes before the body is read: hello, volume_open,
// volume_state, write, ack, flush, sync_start, sync_done, key_offer, key_ack, error.
// Liveness is SSH's keepalive, not a frame. Every frame of a volume has the volume's sequence number, which the
// probe sites and the ack use.
//
// # The replica layer and its threads
//
// bdev_replica_create stacks a replica bdev on a base; crypt goes on top (host → crypt →
// replica → base), so the layer, the wire and the partner see ciphertext only. On the
// reactor (replica.go) a write counts itself in its regions, makes sure their intent
// bits are durable, copies its data into a buffer of the reactor's memory core, pushes
// a record on the volume's bounded MPSC ring, wakes the pump with a non-blocking send
// and goes to the base; the ack comes back as a reactor message. None of that blocks or
// allocates on the Go heap (TestReactorSideAllocatesNothing). The 0-allocation rule
// stops at the ring: the pump (the ring's single consumer), the ack reader, the resync
// loop, the bitmap persister and x/crypto/ssh are ordinary goroutines that encode,
// allocate and block as they please, never on a reactor.
//
// Sync mode completes a host write once the base and the partner acknowledged it (a
// flush waits for the partner's flush too). Async mode completes it after the base; the
// journal is the records in flight, bounded by journal_bytes: a write that finds it full,
// or any write the stream cannot ship (partner away, write zeroes, unmap, a region being
// copied), is tracked as a dirty region instead. With the partner away, sync mode
// degrades the same way rather than failing writes (a partition stalls sync writes for
// up to the 3 s keepalive before it is noticed).
//
// # Regions, the bitmap, resync
//
// A volume is cut into regions (region_bytes, default 1 MiB), each with atomic bits and
// counters (bitmap.go): intent (persisted before a write is submitted, cleared by the
// persister once the region is idle and identical on the partner: md's write-intent
// bitmap), resync (differs from the partner), syncing (being copied), and in-flight
// counts. The bitmap file (<data>/replication/volumes/<name>.bitmap) holds the intent
// bits and the epoch of the partner's lineage, so a crash of A resynchronizes the
// regions written in the last moments, not the whole volume. The resync loop
// (stream.go) copies dirty regions while writes to clean ones flow: it marks a region
// syncing and clears its resync bit before it waits for the writes in progress and
// reads it, so a write either lands before the read or is not shipped and marks the
// region again; frames keep ring order, and B applies overlapping writes in that
// order. A full sync happens when the partner's epoch is not the volume's (a new
// partner, a lost copy); on a fresh copy it skips all-zero regions.
//
// # Keys
//
// keys.go explains the choice: A sends the KEK source of the crypt bdev on the replica
// (key file bytes, or the passphrase) over the keys link; B wraps it at once under its
// own KEK (its operator's key file) with AES-256-GCM and stores only that. An encrypted
// volume's data does not leave A before B acknowledged its keys, and B refuses an
// encrypted volume's data without them. Promotion (replication_promote) fences the copy,
// opens it through crypt with the exchanged key (handed over in a file on a memory file
// system, removed at once) and rekeys its header to B's KEK with crypt's own rekey.
//
// # Who may call it
//
// The daemon registers it (RegisterRPC) with an Env; the RPCs run on the control plane.
// Replica channels are their reactors'. tools/sluice-agent uses Proxy and the types of
// the RPCs.
//
// # What it must never do
//
// Block or allocate on a reactor; let a write complete before its regions' intent bits
// are durable; ship plaintext (it sits below crypt) or send a key outside the tunnel;
// write a key in clear to any disk; accept a tunnel, a proxy session or a forward from
// a key or to a port not configured.
//
// # Limitations
//
// Overlapping host writes in flight at the same time on two reactors may be applied in
// different orders by A's base and B's copy (hosts do not order concurrent overlapping
// writes; a resync of the region reconciles them). A sync write waits for a live but slow
// partner without a timeout of its own. After bdev_crypt_rekey on A, restart the
// volume's replication so that the new KEK is exchanged. The KEK, not a data key, is
// what B learns (see keys.go).
package replication
