package tcpconn

import (
	"golang.org/x/sys/unix"

	"sluice/engine/reactor"
)

// Socket is a non-blocking connected socket registered on one reactor's epoll.
//
// Preconditions: every method runs on the owning reactor.
type Socket struct {
	R      *reactor.Reactor
	FD     int
	tok    int32
	events uint32
}

// Register watches fd for input (and peer hang-up) on r, delivering events to h.
func (s *Socket) Register(r *reactor.Reactor, fd int, h reactor.FDHandler) error {
	s.R, s.FD, s.tok = r, fd, -1
	tok, err := r.AddFD(fd, unix.EPOLLIN|unix.EPOLLRDHUP, h)
	if err != nil {
		return err
	}
	s.tok, s.events = tok, unix.EPOLLIN|unix.EPOLLRDHUP
	return nil
}

// Registered reports whether the socket is watched (Register succeeded, not closed).
func (s *Socket) Registered() bool { return s.tok >= 0 }

func (s *Socket) setEvents(ev uint32) {
	if ev == s.events || s.tok < 0 {
		return
	}
	s.events = ev
	_ = s.R.ModifyFD(s.FD, s.tok, ev)
}

// WantWritable asks for (or stops asking for) EPOLLOUT, while output waits for room.
func (s *Socket) WantWritable(on bool) {
	ev := s.events &^ unix.EPOLLOUT
	if on {
		ev |= unix.EPOLLOUT
	}
	s.setEvents(ev)
}

// StopReading stops input events, so that TCP pushes back on the peer.
func (s *Socket) StopReading() { s.setEvents(s.events &^ (unix.EPOLLIN | unix.EPOLLRDHUP)) }

// PauseInput stops input events but keeps hang-up detection, for a connection stalled
// on resources: its peer going away must still be noticed.
func (s *Socket) PauseInput() { s.setEvents(s.events &^ unix.EPOLLIN) }

// StartReading restores input events.
func (s *Socket) StartReading() { s.setEvents(s.events | unix.EPOLLIN | unix.EPOLLRDHUP) }

// Detach stops watching the socket and hands its descriptor over, open, so that
// another reactor may Register it: an iSCSI connection joining a session moves to the
// session's reactor.
func (s *Socket) Detach() int {
	if s.tok >= 0 {
		s.R.RemoveFD(s.FD, s.tok)
		s.tok = -1
	}
	fd := s.FD
	s.FD = -1
	return fd
}

// Close unregisters and closes the socket.
func (s *Socket) Close() {
	if s.tok >= 0 {
		s.R.RemoveFD(s.FD, s.tok)
		s.tok = -1
	}
	if s.FD >= 0 {
		_ = unix.Close(s.FD)
		s.FD = -1
	}
}
