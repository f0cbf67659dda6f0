package tcpconn

import (
	"golang.org/x/sys/unix"

	"sluice/engine/internal/sys"
)

// MaxIOVPerWritev bounds the buffers one writev gathers.
const MaxIOVPerWritev = 64

// Releaser is told when the last buffer it queued left the queue: written in full, or
// dropped because the connection is going away. A protocol's request implements it
// (a pointer in an interface: queueing allocates nothing).
type Releaser interface {
	Sent()
}

type sendEntry struct {
	b   []byte
	rel Releaser
}

// SendQueue is a bounded FIFO of buffers to write, flushed with writev in batches.
//
// Preconditions: used by one reactor.
type SendQueue struct {
	entries []sendEntry
	head    int
	n       int
	sentOff int // bytes of the head entry already written
	iov     [MaxIOVPerWritev]unix.Iovec
}

// NewSendQueue makes a queue of capacity buffers. A protocol bounds what it queues (a
// few buffers per request, requests bounded by the queue depth), so overflowing is a
// programming error.
func NewSendQueue(capacity int) SendQueue {
	return SendQueue{entries: make([]sendEntry, capacity)}
}

// Len is the number of buffers queued.
func (q *SendQueue) Len() int { return q.n }

// Push queues b; rel, when not nil, is told once b has left the queue.
func (q *SendQueue) Push(b []byte, rel Releaser) {
	if q.n == len(q.entries) {
		panic("tcpconn: send queue overflow")
	}
	q.entries[(q.head+q.n)%len(q.entries)] = sendEntry{b: b, rel: rel}
	q.n++
}

// Flush writes as much as fd takes. It reports whether the queue is empty, and the
// errno of a failed write (EAGAIN is not a failure: the socket is full).
func (q *SendQueue) Flush(fd int) (empty bool, errno unix.Errno) {
	for q.n > 0 {
		k, total := 0, 0
		for k < len(q.iov) && k < q.n {
			b := q.entries[(q.head+k)%len(q.entries)].b
			if k == 0 {
				b = b[q.sentOff:]
			}
			if len(b) > 0 {
				sys.SetIovec(&q.iov[k], b)
			} else {
				q.iov[k] = unix.Iovec{}
			}
			total += len(b)
			k++
		}
		n := 0
		if total > 0 {
			var e unix.Errno
			n, e = sys.Writev(fd, q.iov[:k])
			if e == unix.EAGAIN || e == unix.EINTR {
				return false, 0
			}
			if e != 0 {
				return false, e
			}
		}
		q.retire(n)
		if n < total {
			return false, 0
		}
	}
	return true, 0
}

// retire drops n written bytes from the head, telling each entry's Releaser once its
// buffer is gone.
func (q *SendQueue) retire(n int) {
	for q.n > 0 {
		e := &q.entries[q.head]
		left := len(e.b) - q.sentOff
		if n < left {
			q.sentOff += n
			return
		}
		n -= left
		q.sentOff = 0
		rel := e.rel
		*e = sendEntry{}
		q.head = (q.head + 1) % len(q.entries)
		q.n--
		if rel != nil {
			rel.Sent()
		}
	}
}

// Drop discards everything queued, telling each Releaser: nothing more will reach the
// peer.
func (q *SendQueue) Drop() {
	for q.n > 0 {
		q.retire(len(q.entries[q.head].b) - q.sentOff)
	}
}

// Grow enlarges the queue to capacity entries, keeping what is queued in order: a
// connection sized for its setup (a few buffers) takes its full size once the peer has
// shown it speaks the protocol.
func (q *SendQueue) Grow(capacity int) {
	if capacity <= len(q.entries) {
		return
	}
	e := make([]sendEntry, capacity)
	for i := 0; i < q.n; i++ {
		e[i] = q.entries[(q.head+i)%len(q.entries)]
	}
	q.entries, q.head = e, 0
}
