package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/account"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/config"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/logging"
	"github.com/errandhq/errand/internal/seclog"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: errand migrate up|down|status")
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "up":
		if err := db.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
		return migrateUp(ctx, cfg.DatabaseURL, stdout)
	case "down", "status":
		m, err := db.NewMigrator(cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer m.Close()
		if args[0] == "down" {
			return m.Down(ctx, stdout)
		}
		return m.Status(ctx, stdout)
	}
	return fmt.Errorf("unknown migrate command %q: want up, down or status", args[0])
}

func migrateUp(ctx context.Context, databaseURL string, out io.Writer) error {
	m, err := db.NewMigrator(databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Up(ctx, out)
}

func runTenant(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: errand tenant create --name N --timezone Z [--region US]")
	}
	fs := flag.NewFlagSet("tenant create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the business's name")
	tz := fs.String("timezone", "", "IANA time zone, e.g. America/Chicago")
	region := fs.String("region", "US", "ISO 3166 region for phone numbers without a country code")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	store, err := db.Open(ctx, cfg.DatabaseURL, cfg.DBRole, 2)
	if err != nil {
		return err
	}
	defer store.Close()
	clk := clock.Real{}
	svc := &account.Service{Store: store, Clock: clk, SecLog: &seclog.Log{Store: store, Clock: clk, Logger: logging.New(stderr, cfg.LogLevel)}}
	t, key, err := svc.CreateTenant(ctx, account.NewTenant{Name: *name, Timezone: *tz, DefaultRegion: *region}, seclog.Event{Actor: "cli"})
	if err != nil {
		return flagProblems(err)
	}
	fmt.Fprintf(stdout, "tenant  %s\nname    %s\napi_key %s\n\nThe key is shown this once; only its hash is stored.\n", t.ID, t.Name, key)
	return nil
}

// flagProblems spells out an invalid-fields fault by flag name: its
// Error() says only that some fields are invalid, which leaves a person at
// a terminal guessing which flag to fix.
func flagProblems(err error) error {
	f, ok := fault.As(err)
	if !ok || f.Code != fault.Invalid {
		return err
	}
	problems, ok := f.Details.(map[string]string)
	if !ok || len(problems) == 0 {
		return err
	}
	flags := map[string]string{"default_region": "region"}
	names := make([]string, 0, len(problems))
	for field := range problems {
		names = append(names, field)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, field := range names {
		flagName := field
		if n, ok := flags[field]; ok {
			flagName = n
		}
		parts[i] = "--" + flagName + ": " + problems[field]
	}
	return fmt.Errorf("%s: %w", strings.Join(parts, "; "), err)
}
