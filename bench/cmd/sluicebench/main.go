package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "rawserver":
		err = rawServer(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "load":
		err = loadOnly(ctx, os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "report":
		err = rerender(os.Args[2:])
	default:
		err = matrix(ctx, os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluicebench:", err)
		os.Exit(1)
	}
}
