// Package sys holds the thin raw-syscall wrappers the data path needs: readv/writev on
// non-blocking sockets, epoll, eventfd and CPU affinity.
//
// Why it exists: golang.org/x/sys/unix's vectored calls build their iovec arrays on the
// heap and go through the scheduler's syscall entry, and the reactors must neither
// allocate nor park per I/O. Callers own the iovec arrays and reuse them.
//
// Who may call it: engine packages only (it is internal). It never retries, logs or
// allocates; errors come back as unix.Errno so that EAGAIN costs nothing.
package sys
