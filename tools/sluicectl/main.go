package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"sluice/engine/rpc"
)

const usageText = `usage: sluicectl [flags] <method> [key=value ...] [--json '{...}']
       sluicectl [flags] methods      list the daemon's methods
       sluicectl [flags] version      the daemon's version

Calls one JSON-RPC method of the sluice daemon and prints its result.
  key=value      a param; the value is JSON when it parses as JSON (64, true, [1,2]),
                 else a string (Malloc0); quote to force a string: name='"123"'
  key.sub=value  a member of a nested object
  --json '{..}'  all params at once; key=value arguments override its members
Errors print as "error CODE: message" on stderr, with exit status 1.

examples:
  sluicectl bdev_malloc_create name=Malloc0 num_blocks=32768 block_size=512
  sluicectl bdev_get_bdevs
  sluicectl -o json nvmf_get_subsystems
  sluicectl save_config path=/etc/sluice/sluice.json

flags:
`

func main() {
	opts, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if err == flag.ErrHelp {
		os.Exit(exitOK)
	}
	if err != nil {
		os.Exit(exitUsage)
	}
	os.Exit(execute(context.Background(), opts, os.Stdout, os.Stderr))
}

// parseFlags reads the global flags, then the method and its arguments. Usage problems
// are printed on stderr.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var opts options
	flags := flag.NewFlagSet("sluicectl", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, usageText)
		flags.PrintDefaults()
	}
	socket := getenv("SLUICE_RPC_SOCK")
	if socket == "" {
		socket = rpc.DefaultSocketPath
	}
	flags.StringVar(&opts.socket, "s", socket, "daemon RPC socket (env SLUICE_RPC_SOCK)")
	flags.StringVar(&opts.output, "o", formatAuto,
		"output: auto (tables for lists, else JSON), json, or table")
	flags.DurationVar(&opts.timeout, "t", 60*time.Second, "timeout of the call")
	if err := flags.Parse(args); err != nil {
		return options{}, err
	}
	switch opts.output {
	case formatAuto, formatJSON, formatTable:
	default:
		fmt.Fprintf(stderr, "sluicectl: -o %q: want auto, json or table\n", opts.output)
		return options{}, fmt.Errorf("bad -o")
	}
	if opts.timeout <= 0 {
		fmt.Fprintf(stderr, "sluicectl: -t must be positive\n")
		return options{}, fmt.Errorf("bad -t")
	}
	if flags.NArg() == 0 {
		flags.Usage()
		return options{}, fmt.Errorf("no method")
	}
	opts.method, opts.args = flags.Arg(0), flags.Args()[1:]
	return opts, nil
}
