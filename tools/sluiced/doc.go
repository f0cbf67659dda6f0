// Command sluiced is the sluice storage daemon: it starts the reactors, the memory
// domain, the bdev layer, the NVMe/TCP target and the JSON-RPC server, loads a config
// (or the embedded default: a persistent file-backed volume exported on 127.0.0.1),
// and on SIGTERM drains in-flight I/O and closes every controller before it exits.
//
// main does flags and wiring only; everything it wires lives under engine/.
package main
