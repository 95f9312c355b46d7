package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/store"
	"github.com/gormcache/gormcache/store/redisstore"
)

var invalidateCommand = &command{
	name:    "invalidate",
	args:    "TABLE…",
	summary: "make every cached result that read TABLE stale (bump its version)",
	help: `
Bumps the version of each table in the store: every cached query result and
low-level entry that depends on one of them is stale at once, in every
application process sharing the store. One store write per table: no key is
scanned or deleted. Run it after writes made outside the application (psql, a
cron job, another service).

Table names are normalised as the plugin does (invalidation.TableName):
public.users, "Users" and users are one table. The CLI does not know the
database's foreign keys and views, which the plugin's own Invalidate follows:
name every table whose cached results should go (the children of an ON DELETE
CASCADE, the tables under a view).

Prints each table's new version.

A version the store does not have is created by the bump, which changes
nothing for the application: no cached result depended on it. So that a
wrong --store (another ?prefix=, database or server) does not pass for a
success, invalidate first checks which tags have a version (Redis and
memcached; a file store cannot say). A table without one gets a warning on
stderr (misspelt, not cached yet, or not this prefix). If "*", which every
cached result depends on, has none either, the application has cached
nothing under this prefix of this store: invalidate says so and exits 4.
With --strict, it exits 4 when any table named had no version, too.`,
	examples: `  gormcache invalidate --store redis://127.0.0.1:6379 users
  gormcache invalidate users orders public.order_items
  GORMCACHE_STORE=memcache://10.0.0.5:11211 gormcache invalidate articles
  gormcache invalidate --strict orders || alert "orders not invalidated"`,
	noTarget: true,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print the new versions as a JSON object")
		strict := fs.Bool("strict", false, "exit 4 when a table named had no version under the prefix before the bump")
		return func(ctx context.Context, e *env, args []string) error {
			tags, err := tableTags(args)
			if err != nil {
				return err
			}
			if len(tags) == 0 {
				return usagef("name at least one table (to make everything stale, use gormcache flush)")
			}
			return bumpAndPrint(ctx, e, tags, *asJSON, "invalidated", *strict)
		}
	},
}

var flushCommand = &command{
	name:    "flush",
	args:    "",
	summary: `make every cached result stale (bump the global tag "*")`,
	help: `
Bumps the global tag "*", on which every entry of the plugin and of package
lowlevel depends: everything in the store is stale at once, as after
plugin.Plugin.Flush. Nothing is scanned or deleted (no KEYS, no SCAN): stale
entries stop being served at once and go when their TTL ends or the store
evicts them.

If "*" had no version under the prefix before the bump (checked on Redis
and memcached), the application has cached nothing there: flush says so and
exits 4 (check ?prefix= in --store, the database number and the server).`,
	examples: `  gormcache flush --store redis://127.0.0.1:6379
  gormcache flush --store 'redis+cluster://10.0.0.1:7000,10.0.0.2:7000?prefix=myapp:'`,
	noTarget: true,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print the new version of \"*\" as a JSON object")
		return func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("flush takes no arguments (got %q); to invalidate tables, use gormcache invalidate TABLE…", args)
			}
			return bumpAndPrint(ctx, e, []string{store.GlobalTag}, *asJSON, "flushed: every cached result is stale;", false)
		}
	},
}

var versionsCommand = &command{
	name:    "versions",
	args:    "[TABLE…]",
	summary: `print the current versions of tables and of "*"`,
	help: `
Prints the version each table has in the store, and that of the global tag
"*". An entry is served only while the versions of its tables and of "*" are
those it was stored with, so a version that changed means the entries stored
before are stale. A version the store does not have yet is created (a random
number, as the application would); 0 means the table is held by a write in
flight (reads go to the database until it ends). If "*" had no version
before (Redis and memcached tell), a warning on stderr says that the
application has cached nothing under this prefix.`,
	examples: `  gormcache versions users orders
  gormcache versions --json users`,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print a JSON object: table → version")
		return func(ctx context.Context, e *env, args []string) error {
			tags, err := tableTags(args)
			if err != nil {
				return err
			}
			if !slices.Contains(tags, store.GlobalTag) {
				tags = append(tags, store.GlobalTag)
			}
			t, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			defer t.Close()
			missing, err := missingVersions(ctx, e, t, tags)
			if err != nil {
				return err
			}
			vs, err := readVersions(ctx, e, t, tags)
			if err != nil {
				return err
			}
			if err := printVersions(e.stdout, tags, vs, *asJSON, ""); err != nil {
				return err
			}
			if slices.Contains(missing, store.GlobalTag) {
				fmt.Fprintf(e.stderr, "gormcache versions: warning: %s\n", emptyPrefix(t, "these versions were created by this read"))
			}
			return nil
		}
	},
}

// tableTags normalises table names into tags; "*" is kept as the global tag.
func tableTags(args []string) ([]string, error) {
	var tags []string
	for _, a := range args {
		tag := a
		if a != store.GlobalTag {
			tag = invalidation.TableName(a)
		}
		if tag == "" {
			return nil, usagef("empty table name %q", a)
		}
		if !slices.Contains(tags, tag) {
			tags = append(tags, tag)
		}
	}
	return tags, nil
}

func readVersions(ctx context.Context, e *env, t *target, tags []string) ([]uint64, error) {
	vs := make([]uint64, len(tags))
	cctx, cancel := e.withTimeout(ctx)
	defer cancel()
	if err := t.Versions(cctx, tags, vs); err != nil {
		return nil, t.fail("read versions", err)
	}
	return vs, nil
}

// missingVersions returns the tags, and "*", that have no version in t's
// store, without creating any; none when the store cannot tell.
func missingVersions(ctx context.Context, e *env, t *target, tags []string) ([]string, error) {
	if t.hasVersions == nil {
		return nil, nil
	}
	check := tags
	if !slices.Contains(check, store.GlobalTag) {
		check = append(slices.Clip(tags), store.GlobalTag)
	}
	cctx, cancel := e.withTimeout(ctx)
	has, err := t.hasVersions(cctx, check)
	cancel()
	if err != nil {
		return nil, t.fail("check versions", err)
	}
	var missing []string
	for i, tag := range check {
		if !has[i] {
			missing = append(missing, tag)
		}
	}
	return missing, nil
}

// underPrefix names t's store and prefix for messages: `prefix "p:" in
// redis at host:port`.
func underPrefix(t *target) string {
	at := *t.spec
	at.prefix = ""
	if t.spec.prefix == "" {
		return fmt.Sprintf("the default prefix %q (no ?prefix= in --store) in %s", redisstore.DefaultPrefix, at.String())
	}
	return fmt.Sprintf("prefix %q in %s", t.spec.prefix, at.String())
}

// emptyPrefix says that "*" had no version in t's store, so that the
// application has never read that prefix; then says what so.
func emptyPrefix(t *target, so string) string {
	return fmt.Sprintf(`no version of "*" under %s: every cached result depends on "*", so the application has cached nothing under this prefix (or the store lost it since) and %s. `+
		`Its store is probably another: check ?prefix= in --store (the application's redisstore or memcachestore Config.Prefix), the database number and the server`,
		underPrefix(t), so)
}

// bumpAndPrint bumps tags and prints their new versions. Before the bump it
// checks which of them, and "*", have a version: a bump that creates a
// version changes nothing for the application. It warns of tables without
// one, and returns a noTargetError when "*" has none (or, strict, when a
// table has none).
func bumpAndPrint(ctx context.Context, e *env, tags []string, asJSON bool, verb string, strict bool) error {
	t, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer t.Close()
	missing, err := missingVersions(ctx, e, t, tags)
	if err != nil {
		return err
	}
	cctx, cancel := e.withTimeout(ctx)
	_, err = t.Bump(cctx, core.Wide(tags), 0) // (row-level entries depend on the rows tags)
	cancel()
	if err != nil {
		return t.fail("bump", err)
	}
	vs, err := readVersions(ctx, e, t, tags)
	if err != nil {
		return err
	}
	if err := printVersions(e.stdout, tags, vs, asJSON, verb); err != nil {
		return err
	}
	if slices.Contains(missing, store.GlobalTag) {
		return &noTargetError{msg: emptyPrefix(t, "this bump invalidated nothing it reads")}
	}
	var tables []string
	for _, tag := range missing {
		if slices.Contains(tags, tag) {
			tables = append(tables, tag)
		}
	}
	if len(tables) == 0 {
		return nil
	}
	msg := fmt.Sprintf(`no version of %s under %s before this bump: no cached result depended on it, so the bump changed nothing. `+
		`The table is not cached yet, or misspelt (name it as the SQL does), or the application uses another ?prefix=`,
		strings.Join(tables, ", "), underPrefix(t))
	if strict {
		return &noTargetError{msg: msg}
	}
	fmt.Fprintf(e.stderr, "gormcache invalidate: warning: %s\n", msg)
	return nil
}

func printVersions(w io.Writer, tags []string, vs []uint64, asJSON bool, verb string) error {
	if asJSON {
		m := make(map[string]uint64, len(tags))
		for i, t := range tags {
			m[t] = vs[i]
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	if verb != "" {
		fmt.Fprintln(w, verb, "new versions:")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, t := range tags {
		note := ""
		if vs[i] == 0 {
			note = "\t(held by a write in flight: read from the database until it ends)"
		}
		fmt.Fprintf(tw, "%s\t%d%s\n", t, vs[i], note)
	}
	return tw.Flush()
}
