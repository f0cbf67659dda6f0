package sys

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// IOVMax is the kernel's limit on iovecs per readv/writev call (UIO_MAXIOV).
const IOVMax = 1024

// PinThread binds the calling OS thread to one CPU.
//
// Preconditions: the goroutine has called runtime.LockOSThread, otherwise the Go
// scheduler may move it to an unpinned thread.
func PinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin thread to cpu %d: %w", cpu, err)
	}
	return nil
}

// ThreadCPU reports which CPU the calling thread last ran on.
func ThreadCPU() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return -1
	}
	if set.Count() == 1 {
		for i := 0; i < 1024; i++ {
			if set.IsSet(i) {
				return i
			}
		}
	}
	return -1
}

// NewEventfd makes a non-blocking, close-on-exec eventfd used to wake a sleeping reactor.
func NewEventfd() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	return fd, nil
}

var one = [8]byte{1}

// SignalEventfd adds one to the eventfd counter. EAGAIN (counter saturated) means a
// wakeup is already pending, which is all a waker needs.
func SignalEventfd(fd int) {
	_, _ = Write(fd, one[:])
}

// DrainEventfd resets the eventfd counter.
func DrainEventfd(fd int) {
	var b [8]byte
	_, _ = Read(fd, b[:])
}
