package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/qmq-go/qmq/services/broker"
)

func runBroker(args []string, stderr io.Writer) int {
	f, o, log, err := parseServerFlags("broker", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "qmq broker:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := broker.New(ctx, broker.Options{ConfDir: f.confDir, Overrides: o, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "qmq broker: cannot start: %v\n", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "qmq broker: %v\n", err)
		return 1
	}
	return 0
}
