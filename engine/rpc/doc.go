// Package rpc is sluice's management plane: a JSON-RPC 2.0 server on a Unix socket with
// SPDK-style methods, the registry of those methods, the mapping of Go errors to JSON-RPC
// error codes, the config file (SPDK's format: the live state as replayable calls) and a
// client for sluicectl and tests.
//
// # What it owns
//
//   - Transport: Listen binds the socket (default /var/tmp/sluice.sock, mode 0600, a stale
//     socket removed only if nothing answers on it); Server serves it: concurrent
//     connections, requests back to back on one connection, batches and notifications,
//     a 4 MiB request limit, idle and write timeouts, graceful Shutdown. Malformed JSON
//     is answered with -32700 and the connection closed (no resync).
//   - Registry: method names are object_verb snake_case (bdev_malloc_create,
//     nvmf_create_subsystem). Each module registers its own methods beside itself, with
//     Handle (typed params decoded strictly: unknown or missing required members are
//     -32602 naming the member) or HandleRaw. A bad or duplicate name panics: it is a
//     programmer error found at start. Built-ins: rpc_get_methods, sluice_get_version,
//     save_config.
//   - Error mapping: handlers return Go errors wrapping the sentinels of this package
//     (fmt.Errorf("bdev %q: %w", name, rpc.ErrNotFound)); codeTable in errors.go is the
//     one place that turns them into codes (table below). The message sent is always the
//     full text of the returned error. On the client, *Error matches the same sentinels
//     with errors.Is.
//   - Config replay: modules register a config section (RegisterConfigSection) that
//     dumps their state as calls; save_config and SaveConfig collect them; LoadConfig
//     validates a whole file before applying anything, then replays it in section order.
//
// # Error codes
//
// Application codes are negative errno values, as SPDK sends them:
//
//	ErrInvalidParams   -32602  (also params that do not decode, or fail Validate)
//	ErrInvalidState        -1  SPDK's "method not callable in the current state"
//	fs.ErrNotExist         -2  ENOENT
//	ErrAgain              -11  EAGAIN: retry later
//	ErrNoMemory           -12  ENOMEM
//	fs.ErrPermission      -13  EACCES
//	ErrBusy               -16  EBUSY
//	ErrExists             -17  EEXIST (also fs.ErrExist)
//	ErrNotFound           -19  ENODEV, as SPDK answers for a missing bdev
//	ErrInvalid            -22  EINVAL
//	ErrNoSpace            -28  ENOSPC
//	ErrNotSupported       -95  EOPNOTSUPP (also errors.ErrUnsupported)
//	ErrTimeout           -110  ETIMEDOUT (also context.DeadlineExceeded)
//	ErrCanceled          -125  ECANCELED (also context.Canceled)
//	*Error                     its own code (a handler may build one, with Data)
//	anything else      -32603  internal error, with the error's text
//
// Protocol codes: -32700 parse error (also a request over the size limit), -32600
// invalid request, -32601 method not found, -32602 invalid params, -32603 internal error
// (also a recovered handler panic).
//
// # Who may call it
//
// The daemon's wiring creates one Registry, lets each module register its methods and
// section, loads the config, then starts a Server. Any engine package above the core
// (bdev and up) may import rpc to register methods; reactor and mem must not. sluicectl
// and tests use Client. LoadConfig and Invoke may be called in process.
//
// # What it must never do
//
// Handlers run on the server's goroutines, the control plane. Neither this package nor a
// handler touches reactor-owned state directly: a module whose method changes or reads
// such state sends a message to the owning reactor and waits for the reply (honouring
// the call's context), as SPDK's RPC thread does with spdk_thread_send_msg. A handler
// must not block a reactor waiting for the control plane. This package is the one place
// in the engine that recovers panics: a panicking handler is logged and answered with
// -32603, and the server keeps serving.
package rpc
