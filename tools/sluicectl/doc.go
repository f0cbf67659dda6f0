// Command sluicectl is the sluice daemon's command-line client, in the manner of SPDK's
// rpc.py: it sends one JSON-RPC 2.0 call over the daemon's Unix socket and prints the
// result.
//
//	sluicectl [-s socket] [-o auto|json|table] [-t timeout] <method> [key=value ...] [--json '{...}']
//	sluicectl methods
//
// It owns argument parsing (key=value pairs and --json into params) and output (indented
// JSON, or aligned tables for list-shaped results). It talks to the daemon only through
// engine/rpc's Client and never reaches into engine state; main.go only parses flags and
// wires the parts together.
package main
