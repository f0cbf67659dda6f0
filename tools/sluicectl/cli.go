package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"sluice/engine/rpc"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the call failed: an RPC error, or the daemon could not be reached
	exitUsage = 2
)

// options is what the command line asks for.
type options struct {
	socket  string
	output  string
	timeout time.Duration
	method  string
	args    []string // after the method: key=value and --json
}

// aliases are commands that name a method more readably.
var aliases = map[string]string{
	"methods": "rpc_get_methods",
	"version": "sluice_get_version",
}

// execute performs one call and prints its outcome: the result on stdout, or
// "error CODE: message" on stderr. It returns the exit status.
func execute(ctx context.Context, opts options, stdout, stderr io.Writer) int {
	params, err := parseParams(opts.args)
	if err != nil {
		fmt.Fprintf(stderr, "sluicectl: %v\n", err)
		return exitUsage
	}
	method := opts.method
	if m, ok := aliases[method]; ok {
		method = m
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	c, err := rpc.DialContext(ctx, opts.socket)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v (is the daemon running? see -s and SLUICE_RPC_SOCK)\n", err)
		return exitError
	}
	defer c.Close()

	var p any // nil, not a nil json.RawMessage, so that no params are sent
	if params != nil {
		p = params
	}
	var result json.RawMessage
	if err := c.Call(ctx, method, p, &result); err != nil {
		var rerr *rpc.Error
		if errors.As(err, &rerr) {
			fmt.Fprintf(stderr, "error %d: %s\n", rerr.Code, rerr.Message)
		} else {
			fmt.Fprintf(stderr, "error: %v\n", err)
		}
		return exitError
	}
	if opts.method == "methods" {
		return printLines(result, stdout, stderr)
	}
	if err := printResult(stdout, result, opts.output); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitError
	}
	return exitOK
}

// printLines prints a list of strings one per line (sluicectl methods).
func printLines(result json.RawMessage, stdout, stderr io.Writer) int {
	var lines []string
	if err := json.Unmarshal(result, &lines); err != nil {
		fmt.Fprintf(stderr, "error: decode method list: %v\n", err)
		return exitError
	}
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	return exitOK
}
