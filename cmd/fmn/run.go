package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"fmn/config"
)

const usage = `fmn — federated message notifications

Usage:
  fmn serve   [-config FILE]   run every role in one process (the default)
  fmn consume [-config FILE]   read the bus and store messages and notifications
  fmn work    [-config FILE]   deliver notifications
  fmn web     [-config FILE]   serve the web UI and the REST API
  fmn migrate [-config FILE]   apply database migrations
  fmn publish -endpoint E (-topic T -msg JSON | -corpus DIR [-rate N]) [-connect]
  fmn publish -amqp URL [-exchange X] (-topic T -msg JSON | -corpus DIR [-rate N]) [-severity S]
  fmn tail    -endpoint E [-topic PREFIX]
  fmn tail    -amqp URL [-exchange X] [-bind KEY]...
  fmn inspect                  envelopes on stdin → what the rules see, one JSON a line
  fmn verify  -ca F [-crl F] [-routing-policy F] [-nitpicky]
  fmn token create -user NAME [-email ADDR]

Settings are FMN_* environment variables (see README.md).
`

// env carries the process's surroundings, so tests can run commands
// in-process with their own.
type env struct {
	environ []string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
}

func run(ctx context.Context, args []string, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := env{environ: environ, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return e.service(ctx, rest, roles{consume: true, work: true, web: true})
	case "consume":
		return e.service(ctx, rest, roles{consume: true})
	case "work":
		return e.service(ctx, rest, roles{work: true})
	case "web":
		return e.service(ctx, rest, roles{web: true})
	case "migrate":
		return e.migrate(ctx, rest)
	case "publish":
		return e.publish(ctx, rest)
	case "tail":
		return e.tail(ctx, rest)
	case "inspect":
		return e.inspect(ctx, rest)
	case "verify":
		return e.verify(ctx, rest)
	case "token":
		if len(rest) == 0 || rest[0] != "create" {
			return errors.New("usage: fmn token create -user NAME [-email ADDR]")
		}
		return e.tokenCreate(ctx, rest[1:])
	case "dev-postgres":
		return e.devPostgres(ctx, rest)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// flags returns a FlagSet that reports errors instead of exiting.
func (e env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("fmn "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

func (e env) loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path, e.environ)
	if err != nil {
		return cfg, fmt.Errorf("configuration:\n%w", err)
	}
	return cfg, nil
}

func (e env) logger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(level)))
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l}))
}
