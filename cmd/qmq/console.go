package main

import (
	"context"
	"io"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/services/console"
)

// runConsole serves the web console configured by console.properties (and
// valid-api-tokens.properties) in --conf.
func runConsole(args []string, stderr io.Writer) int {
	return runServer("console", args, stderr, func(_ context.Context, dir string, o conf.Overrides, log hclog.Logger, _ trace.TracerProvider) (runnable, error) {
		settings, keys, err := console.LoadSettings(dir, conf.Lookup{Overrides: o})
		if err != nil {
			return nil, err
		}
		keys.Log(log)
		return console.New(settings, console.Options{Logger: log})
	})
}
