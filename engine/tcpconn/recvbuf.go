package tcpconn

import (
	"golang.org/x/sys/unix"

	"sluice/engine/internal/sys"
)

// DirectReadMin is the payload left at which a read lands straight in the I/O buffer
// instead of going through the receive buffer (saving a copy per byte).
const DirectReadMin = 16 << 10

// RecvBuffer holds bytes read from a socket that the protocol has not consumed yet.
//
// Preconditions: used by one reactor.
type RecvBuffer struct {
	buf []byte
	pos int
	n   int
	iov [2]unix.Iovec
}

// NewRecvBuffer makes a buffer of size bytes. A connection that has not finished its
// setup (ICReq, login) needs only a small one: Grow gives it the full size once the
// peer has shown it speaks the protocol, so that idle sockets cost little memory.
func NewRecvBuffer(size int) RecvBuffer { return RecvBuffer{buf: make([]byte, size)} }

// Grow enlarges the buffer to size, keeping unconsumed bytes.
func (b *RecvBuffer) Grow(size int) {
	if size <= len(b.buf) {
		return
	}
	nb := make([]byte, size)
	b.n = copy(nb, b.buf[b.pos:b.n])
	b.pos = 0
	b.buf = nb
}

// Pending is the unconsumed bytes.
func (b *RecvBuffer) Pending() []byte { return b.buf[b.pos:b.n] }

// Advance consumes k bytes.
func (b *RecvBuffer) Advance(k int) { b.pos += k }

// Empty reports whether every byte was consumed.
func (b *RecvBuffer) Empty() bool { return b.pos == b.n }

// Discard drops the unconsumed bytes.
func (b *RecvBuffer) Discard() { b.pos = b.n }

// Release frees the memory of a closed connection.
func (b *RecvBuffer) Release() { b.buf, b.pos, b.n = nil, 0, 0 }

// Fill reads what the socket has. When direct (the rest of the current payload's
// destination) is at least DirectReadMin bytes, the read lands there first, with the
// buffer behind it for what follows; directN says how many bytes went to direct. got
// is 0 with errno 0 when the peer closed.
//
// Preconditions: Empty().
func (b *RecvBuffer) Fill(fd int, direct []byte) (directN, got int, errno unix.Errno) {
	b.pos, b.n = 0, 0
	if len(direct) >= DirectReadMin {
		sys.SetIovec(&b.iov[0], direct)
		sys.SetIovec(&b.iov[1], b.buf)
		got, errno = sys.Readv(fd, b.iov[:])
		b.iov[0], b.iov[1] = unix.Iovec{}, unix.Iovec{}
		if errno != 0 || got <= 0 {
			return 0, got, errno
		}
		directN = min(got, len(direct))
		b.n = got - directN
		return directN, got, 0
	}
	got, errno = sys.Read(fd, b.buf)
	if errno == 0 && got > 0 {
		b.n = got
	}
	return 0, got, errno
}
