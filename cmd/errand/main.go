// Command errand is Errand's one binary: every role (dev, api, worker,
// scheduler) and the operator commands (migrate, tenant).
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "errand:", err)
		os.Exit(1)
	}
}

const usage = `usage: errand <command> [flags]

Roles (run until SIGINT/SIGTERM, then shut down gracefully):
  dev         every role in one process, for a laptop: creates the database,
              migrates, prints the admin token and a demo tenant's API key
  api         the HTTP intake and the ops console
  worker      runs jobs
  scheduler   enqueues periodic jobs (any number may run)

Operator commands:
  migrate up|down|status     apply, roll back one, or list migrations
  tenant create --name N --timezone Z [--region US]
                             create a tenant and print its API key once
  bench [-scale N] [-rounds N] <name>|all
                             measure jobs against their raw baselines

Configuration comes from the environment; see .env.example.
`

// run is main without the process: tests call it with their own
// environment, arguments and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runRoles(ctx, getenv, stdout, stderr, roleDev)
	case "api":
		return runRoles(ctx, getenv, stdout, stderr, roleAPI)
	case "worker":
		return runRoles(ctx, getenv, stdout, stderr, roleWorker)
	case "scheduler":
		return runRoles(ctx, getenv, stdout, stderr, roleScheduler)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout)
	case "tenant":
		return runTenant(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
