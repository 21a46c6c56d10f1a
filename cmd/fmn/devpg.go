package main

import (
	"context"
	"errors"
	"fmt"

	"fmn/pgcluster"
)

// devPostgres starts or stops a throwaway cluster for the test suite; the
// Makefile uses it so that `make test` needs no database set up by hand.
func (e env) devPostgres(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "start" && args[0] != "stop") {
		return errors.New("usage: fmn dev-postgres start|stop -dir DIR [-port N]")
	}
	fs := e.flags("dev-postgres " + args[0])
	dir := fs.String("dir", ".tmp/testpg", "folder of the cluster")
	port := fs.Int("port", 55432, "TCP port on 127.0.0.1")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	log := e.logger("warn")
	if args[0] == "stop" {
		return pgcluster.StopDir(ctx, *dir, log)
	}
	c, err := pgcluster.Start(ctx, *dir, pgcluster.Options{Port: *port, Throwaway: true}, log)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, c.URL)
	return nil
}
