//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// sluice's tracer: uprobe programs on the probe-site stubs of sluice/engine/probe.
// Each pair of sites (a start and its end) is matched on a key in `flights`; the
// latency goes into a log-linear histogram in `stats`, one per (kind, reactor,
// volume, peer), with the sampled operations in flight and their time integral for
// the queue depth; ends slower than a kind's threshold go to the `events` ring buffer.
//
// The stubs are Go ABI0 functions (see engine/probe/doc.go): at entry 0(SP) is the
// return address and the arguments are the 8-byte words from 8(SP), a string being
// (pointer, length). The programs read them with bpf_probe_read_user and never write
// user memory.

#include "include/types.h"
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "Dual BSD/GPL";

#define NAME_LEN 32
// Log-linear buckets: values below 8 get a bucket each, then every power of two is
// split in 8 (3 bits of mantissa), so a bucket is at most 12.5% wide; 320 buckets
// reach 2^41 ns (36 minutes). bpf/hist.go mirrors this.
#define SUB_BITS 3
#define SUBS (1 << SUB_BITS)
#define HIST_SLOTS 320
// A start is backdated by at most this much (the caller's own clock says how long the
// operation waited before its start site).
#define MAX_WAIT_NS 10000000000ULL

enum kind {
	KIND_IO = 1,
	KIND_REPL = 2,
	KIND_JOURNAL = 3,
};

// series_key names one histogram. reactor is -1 for replication and the journal.
struct series_key {
	__u32 kind;
	__s32 reactor;
	char vol[NAME_LEN];
	char peer[NAME_LEN];
};

struct series {
	__u64 slots[HIST_SLOTS];
	__u64 count;
	__u64 sum_ns;
	__u64 max_ns;
	__s64 depth;     // sampled operations started and not yet ended
	__u64 depth_ns;  // integral of depth over time (ns x operations)
	__u64 last_ns;   // when depth last changed
	__u64 unmatched; // ends whose start was not seen (attached mid-flight)
	__u64 lost;      // starts replaced by a later start with the same key (never ended)
	__u64 errors;    // I/O ends with a nonzero status
};

struct flight_key {
	struct series_key s;
	__u64 id; // the I/O command's key, or the frame's or entry's sequence
};

struct flight {
	__u64 start_ns;
	__s64 tag; // the I/O command's arrival on the caller's clock, to tell reuse apart
};

struct event {
	__u64 ts_ns;
	__u64 lat_ns;
	__u64 id;
	__s64 depth;
	__s64 status;
	__u32 kind;
	__s32 reactor;
	char vol[NAME_LEN];
	char peer[NAME_LEN];
};

// Set at load time by the reader (cilium/ebpf rewrites .rodata); 0 turns a kind's
// outlier events off.
volatile const __u64 io_outlier_ns = 0;
volatile const __u64 repl_outlier_ns = 0;
volatile const __u64 journal_outlier_ns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct series_key);
	__type(value, struct series);
} stats SEC(".maps");

// The value a new series starts from: a series is too big for the BPF stack.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct series);
} zero_series SEC(".maps");

// LRU: an operation whose end never comes (a connection torn down mid-command) must
// not fill the map for good.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flight_key);
	__type(value, struct flight);
} flights SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} events SEC(".maps");

// Outlier events the ring buffer had no room for.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} event_drops SEC(".maps");

// Force BTF for the types the reader decodes.
const struct event *unused_event __attribute__((unused));

struct io_args {
	__u64 vol_ptr, vol_len;
	__s64 reactor;
	__u64 key;
	__s64 arrival_ns;
	__s64 extra; // io_start: waited ns; io_done: status
};

struct repl_args {
	__u64 vol_ptr, vol_len, peer_ptr, peer_len;
	__u64 seq;
};

struct journal_args {
	__u64 vol_ptr, vol_len;
	__u64 seq;
};

static __always_inline int read_args(struct pt_regs *ctx, void *dst, __u32 size)
{
	return bpf_probe_read_user(dst, size, (void *)(ctx->sp + 8));
}

// read_name copies at most NAME_LEN-1 bytes of a Go string into a zeroed dst.
static __always_inline void read_name(char *dst, __u64 ptr, __u64 len)
{
	if (len > NAME_LEN - 1)
		len = NAME_LEN - 1;
	bpf_probe_read_user(dst, len, (void *)ptr);
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r, s;
	r = (v > 0xFFFFFFFFULL) << 5;
	v >>= r;
	s = (v > 0xFFFF) << 4;
	v >>= s;
	r |= s;
	s = (v > 0xFF) << 3;
	v >>= s;
	r |= s;
	s = (v > 0xF) << 2;
	v >>= s;
	r |= s;
	s = (v > 0x3) << 1;
	v >>= s;
	r |= s;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 slot_of(__u64 v)
{
	if (v < SUBS)
		return v;
	__u32 e = log2_u64(v);
	__u32 s = (e - SUB_BITS + 1) * SUBS + ((v >> (e - SUB_BITS)) & (SUBS - 1));
	return s < HIST_SLOTS ? s : HIST_SLOTS - 1;
}

static __always_inline struct series *get_series(struct series_key *k)
{
	struct series *s = bpf_map_lookup_elem(&stats, k);
	if (s)
		return s;
	__u32 z = 0;
	struct series *zero = bpf_map_lookup_elem(&zero_series, &z);
	if (!zero)
		return 0;
	bpf_map_update_elem(&stats, k, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&stats, k);
}

// depth_step moves a series' depth by d at now, integrating the depth it had since its
// last change. One reactor thread owns an I/O series, so plain updates are enough.
static __always_inline void depth_step(struct series *s, __u64 now, __s64 d)
{
	__s64 depth = s->depth;
	if (depth > 0 && now > s->last_ns)
		s->depth_ns += (__u64)depth * (now - s->last_ns);
	s->last_ns = now;
	depth += d;
	s->depth = depth < 0 ? 0 : depth;
}

static __always_inline void begin(struct flight_key *fk, __u64 start_ns, __s64 tag)
{
	__u64 now = bpf_ktime_get_ns();
	struct series *s = get_series(&fk->s);
	if (!s)
		return;
	if (bpf_map_lookup_elem(&flights, fk)) {
		// The same key started again before it ended: the earlier one is gone.
		__sync_fetch_and_add(&s->lost, 1);
		depth_step(s, now, -1);
	}
	struct flight f = {.start_ns = start_ns ? start_ns : now, .tag = tag};
	bpf_map_update_elem(&flights, fk, &f, BPF_ANY);
	depth_step(s, now, 1);
}

static __always_inline void end(struct flight_key *fk, __s64 tag, __s64 status, __u64 outlier_ns)
{
	__u64 now = bpf_ktime_get_ns();
	struct series *s = get_series(&fk->s);
	if (!s)
		return;
	struct flight *f = bpf_map_lookup_elem(&flights, fk);
	if (!f || f->tag != tag) {
		__sync_fetch_and_add(&s->unmatched, 1);
		return;
	}
	__u64 start = f->start_ns;
	bpf_map_delete_elem(&flights, fk);
	__u64 lat = now > start ? now - start : 0;
	__u32 slot = slot_of(lat);
	if (slot >= HIST_SLOTS)
		return;
	__sync_fetch_and_add(&s->slots[slot], 1);
	__sync_fetch_and_add(&s->count, 1);
	__sync_fetch_and_add(&s->sum_ns, lat);
	if (lat > s->max_ns)
		s->max_ns = lat;
	if (status)
		__sync_fetch_and_add(&s->errors, 1);
	__s64 depth = s->depth;
	depth_step(s, now, -1);
	if (!outlier_ns || lat < outlier_ns)
		return;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 z = 0;
		__u64 *d = bpf_map_lookup_elem(&event_drops, &z);
		if (d)
			__sync_fetch_and_add(d, 1);
		return;
	}
	e->ts_ns = now;
	e->lat_ns = lat;
	e->id = fk->id;
	e->depth = depth;
	e->status = status;
	e->kind = fk->s.kind;
	e->reactor = fk->s.reactor;
	__builtin_memcpy(e->vol, fk->s.vol, NAME_LEN);
	__builtin_memcpy(e->peer, fk->s.peer, NAME_LEN);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int io_key(struct pt_regs *ctx, struct flight_key *fk, struct io_args *a)
{
	__builtin_memset(fk, 0, sizeof(*fk));
	if (read_args(ctx, a, sizeof(*a)))
		return -1;
	fk->s.kind = KIND_IO;
	fk->s.reactor = (__s32)a->reactor;
	fk->id = a->key;
	read_name(fk->s.vol, a->vol_ptr, a->vol_len);
	return 0;
}

SEC("uprobe")
int io_start(struct pt_regs *ctx)
{
	struct flight_key fk;
	struct io_args a;
	if (io_key(ctx, &fk, &a))
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 waited = a.extra > 0 ? (__u64)a.extra : 0;
	if (waited > MAX_WAIT_NS || waited >= now)
		waited = 0;
	begin(&fk, now - waited, a.arrival_ns);
	return 0;
}

SEC("uprobe")
int io_done(struct pt_regs *ctx)
{
	struct flight_key fk;
	struct io_args a;
	if (io_key(ctx, &fk, &a))
		return 0;
	end(&fk, a.arrival_ns, a.extra, io_outlier_ns);
	return 0;
}

static __always_inline int repl_key(struct pt_regs *ctx, struct flight_key *fk)
{
	struct repl_args a;
	__builtin_memset(fk, 0, sizeof(*fk));
	if (read_args(ctx, &a, sizeof(a)))
		return -1;
	fk->s.kind = KIND_REPL;
	fk->s.reactor = -1;
	fk->id = a.seq;
	read_name(fk->s.vol, a.vol_ptr, a.vol_len);
	read_name(fk->s.peer, a.peer_ptr, a.peer_len);
	return 0;
}

SEC("uprobe")
int repl_send(struct pt_regs *ctx)
{
	struct flight_key fk;
	if (repl_key(ctx, &fk))
		return 0;
	begin(&fk, 0, 0);
	return 0;
}

SEC("uprobe")
int repl_ack(struct pt_regs *ctx)
{
	struct flight_key fk;
	if (repl_key(ctx, &fk))
		return 0;
	end(&fk, 0, 0, repl_outlier_ns);
	return 0;
}

static __always_inline int journal_key(struct pt_regs *ctx, struct flight_key *fk)
{
	struct journal_args a;
	__builtin_memset(fk, 0, sizeof(*fk));
	if (read_args(ctx, &a, sizeof(a)))
		return -1;
	fk->s.kind = KIND_JOURNAL;
	fk->s.reactor = -1;
	fk->id = a.seq;
	read_name(fk->s.vol, a.vol_ptr, a.vol_len);
	return 0;
}

SEC("uprobe")
int journal_enqueue(struct pt_regs *ctx)
{
	struct flight_key fk;
	if (journal_key(ctx, &fk))
		return 0;
	begin(&fk, 0, 0);
	return 0;
}

SEC("uprobe")
int journal_dequeue(struct pt_regs *ctx)
{
	struct flight_key fk;
	if (journal_key(ctx, &fk))
		return 0;
	end(&fk, 0, 0, journal_outlier_ns);
	return 0;
}
