// Package sim is a deterministic, seeded simulator for engine/group: several group nodes
// run in one process, on one virtual clock, over an in-memory network with seeded delays,
// drops and partitions, and can be crashed (losing their memory, keeping their storage),
// restarted, paused (SIGSTOP) and resumed.
//
// What it owns:
//   - World: the virtual clock and the single event queue every simulated node's
//     group.Loop posts to. Events run one at a time in (time, sequence) order, so a seed
//     replays a run exactly. World.Hash summarises the run (every delivery and node
//     event) for determinism tests.
//   - Network: the in-memory group.Transport of each node. Every envelope is encoded to
//     its wire frame and decoded at the other end, so the codecs run in every test.
//   - Cluster: nodes 1..N with a group.MemStorage "disk" each, and the fault operations.
//
// Who may call it: tests only (engine/internal/lint's TestImportLayers enforces it). A
// test drives the simulation from one goroutine: Cluster.Run, Cluster.RunUntil, or any
// blocking group.Node method, whose Loop.Wait runs the simulation until the call is
// answered. Calling into the simulation from two goroutines at once makes it
// nondeterministic.
//
// Seeds: Seed(t) takes SEED from the environment or draws one, logs it, and prints
// "reproduce with SEED=..." when the test fails.
//
// What it must never do: read the wall clock or an unseeded random source while it
// decides anything, or iterate a map where the order changes what happens.
package sim
