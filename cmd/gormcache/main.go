package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK       = 0 // success
	exitError    = 1 // runtime error: a server unreachable, an operation failed
	exitUsage    = 2 // usage error: unknown command or flag, missing or bad argument
	exitNotFound = 3 // inspect, get: no live entry under the key
	exitNoTarget = 4 // invalidate, flush: the prefix holds nothing of the application's
)

// Defaults of the global flags.
const (
	defaultPrefix  = "gc"
	defaultTimeout = 5 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// globals are the flags every command accepts, before or after its name.
type globals struct {
	store   string
	prefix  string
	timeout time.Duration
}

// register defines the global flags on fs, with their current values as
// defaults (so that registering them again keeps what was parsed before).
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.store, "store", g.store, "the store's URL (default $GORMCACHE_STORE)")
	fs.StringVar(&g.prefix, "prefix", g.prefix, "the plugin's key prefix (plugin.Config.Prefix)")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound on each store call and connection attempt")
}

// env is what a command runs with.
type env struct {
	g      *globals
	stdout io.Writer
	stderr io.Writer
}

// runFunc runs a command with its positional arguments.
type runFunc func(ctx context.Context, e *env, args []string) error

// command is one command of the program. setup defines the command's own
// flags on fs and returns the function that runs it, which sees their
// parsed values.
type command struct {
	name     string // "invalidate", "pg listen"
	args     string // the positional arguments, for the usage line
	summary  string
	help     string // what it does, in a few paragraphs
	examples string
	notFound bool // may exit with exitNotFound
	noTarget bool // may exit with exitNoTarget
	setup    func(fs *flag.FlagSet) runFunc
}

// commands lists every command, in the order the help shows them.
var commands []*command

func init() {
	commands = []*command{
		invalidateCommand, flushCommand, versionsCommand,
		inspectCommand,
		getCommand, setCommand, deleteCommand,
		pgInstallCommand, pgRemoveCommand, pgListenCommand, pgReplicateCommand,
		benchCommand,
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// notFoundError reports that a key holds no live entry: exit code 3.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

// noTargetError reports that a bump reached no version the application
// uses (the prefix or the store is not the application's): exit code 4.
type noTargetError struct{ msg string }

func (e *noTargetError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{store: os.Getenv("GORMCACHE_STORE"), prefix: defaultPrefix, timeout: defaultTimeout}
	fs := flag.NewFlagSet("gormcache", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			mainHelp(stdout)
			return exitOK
		}
		return reportUsage(stderr, nil, err.Error())
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return reportUsage(stderr, nil, "missing command")
	}
	name := rest[0]
	rest = rest[1:]
	switch name {
	case "help":
		return helpCommand(rest, stdout, stderr)
	case "pg":
		if len(rest) == 0 {
			return reportUsage(stderr, nil, "missing pg command: install-triggers, remove-triggers or listen")
		}
		if rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help" {
			pgHelp(stdout)
			return exitOK
		}
		name, rest = "pg "+rest[0], rest[1:]
	}
	cmd := lookup(name)
	if cmd == nil {
		return reportUsage(stderr, nil, fmt.Sprintf("unknown command %q%s", name, suggest(name)))
	}

	cfs := flag.NewFlagSet("gormcache "+cmd.name, flag.ContinueOnError)
	cfs.SetOutput(io.Discard)
	g.register(cfs)
	runCmd := cmd.setup(cfs)
	pos, err := parseInterleaved(cfs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(stdout, cmd)
			return exitOK
		}
		return reportUsage(stderr, cmd, err.Error())
	}
	if g.timeout <= 0 {
		return reportUsage(stderr, cmd, fmt.Sprintf("--timeout must be positive, got %v", g.timeout))
	}
	if g.prefix == "" {
		return reportUsage(stderr, cmd, `--prefix must not be empty (the plugin's default is "gc")`)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = runCmd(ctx, &env{g: g, stdout: stdout, stderr: stderr}, pos)
	var ue *usageError
	var nf *notFoundError
	var nt *noTargetError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return reportUsage(stderr, cmd, ue.msg)
	case errors.As(err, &nf):
		fmt.Fprintf(stderr, "gormcache %s: %s\n", cmd.name, nf.msg)
		return exitNotFound
	case errors.As(err, &nt):
		fmt.Fprintf(stderr, "gormcache %s: %s\n", cmd.name, nt.msg)
		return exitNoTarget
	}
	fmt.Fprintf(stderr, "gormcache %s: %v\n", cmd.name, err)
	return exitError
}

// reportUsage prints a usage error and where to read more, and returns exit
// code 2.
func reportUsage(w io.Writer, cmd *command, msg string) int {
	if cmd == nil {
		fmt.Fprintf(w, "gormcache: %s\nRun 'gormcache --help' for the commands and their usage.\n", msg)
	} else {
		fmt.Fprintf(w, "gormcache %s: %s\nUsage: gormcache %s [flags] %s\nRun 'gormcache %s --help' for its flags and examples.\n",
			cmd.name, msg, cmd.name, cmd.args, cmd.name)
	}
	return exitUsage
}

// suggest names the commands that start like name, or contain it.
func suggest(name string) string {
	var close []string
	for _, c := range commands {
		short := strings.TrimPrefix(c.name, "pg ")
		if name != "" && (strings.HasPrefix(c.name, name) || strings.HasPrefix(short, name) || strings.Contains(c.name, name)) {
			close = append(close, c.name)
		}
	}
	if len(close) == 0 {
		return ""
	}
	return "; did you mean " + strings.Join(close, " or ") + "?"
}

// parseInterleaved parses fs over args, allowing flags after positional
// arguments (gormcache invalidate users --store …), and returns the
// positional arguments. Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func helpCommand(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		mainHelp(stdout)
		return exitOK
	case args[0] == "pg" && len(args) == 1:
		pgHelp(stdout)
		return exitOK
	}
	name := strings.Join(args, " ")
	if cmd := lookup(name); cmd != nil {
		commandHelp(stdout, cmd)
		return exitOK
	}
	return reportUsage(stderr, nil, fmt.Sprintf("no help for %q: unknown command%s", name, suggest(name)))
}

const storeURLHelp = `Store URLs (--store, or the environment variable GORMCACHE_STORE):
  redis://[user:pass@]host:port[/db][?prefix=gc:]            one Redis server; rediss:// for TLS
  redis+cluster://host1:port,host2:port[?prefix=…]           Redis Cluster (or redis://…?cluster=true)
  redis+sentinel://host1:26379,host2:26379[/db]?master=NAME  Redis through Sentinel
  memcache://host:port[,host2:port][?prefix=gc:]             memcached (one or several servers)
  file:///abs/dir                                            a store/filestore directory (it must exist)
For Sentinel, the user and password of the URL are the Sentinel's; give the
master's as &username=…&password=…. prefix= is the store's own key prefix (redisstore/memcachestore Config.Prefix, "gc:" by
default): give the one the application's store uses. Other query parameters of redis
URLs go to go-redis (dial_timeout=2s, pool_size=…). Percent-encode special
characters of passwords.

Databases (--dsn of inspect --sql, pg and bench, or GORMCACHE_DSN):
  host=127.0.0.1 port=5432 user=app dbname=app   PostgreSQL (or postgres://app@127.0.0.1/app)
  mysql://app:pass@tcp(127.0.0.1:3306)/app       MySQL, MariaDB (inspect --sql, bench)
  sqlite:/path/to/app.db                         SQLite (inspect --sql, bench)
`

const exitCodesHelp = `Exit codes:
  0  success
  1  runtime error: a store or database unreachable, an operation refused
  2  usage error: unknown command or flag, missing or malformed argument
  3  not found: inspect or get found no live entry under the key (none, or
     only a stale or expired one, which inspect still prints)
  4  nothing to invalidate: invalidate or flush found no version of "*" under
     the store's prefix before bumping (with invalidate --strict: no version of
     a named table), so the application never read this prefix of this store:
     --store's ?prefix=, database or server is probably not the application's.
     The bump was made; a warning on stderr says which tags had no version
`

func mainHelp(w io.Writer) {
	fmt.Fprint(w, `gormcache looks at and invalidates the store of a gormcache application from the shell.

Usage:
  gormcache [global flags] COMMAND [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-30s %s\n", c.name+" "+c.args, c.summary)
	}
	fmt.Fprintf(w, "  %-30s %s\n", "help [COMMAND]", "this text, or a command's flags and examples")
	fmt.Fprint(w, `
Global flags (also accepted after the command's name):
  --store URL      the store, as below (default $GORMCACHE_STORE)
  --prefix P       the plugin's key prefix, plugin.Config.Prefix (default "gc"; with
                   Config.Version 2, give "gcv2")
  --timeout D      bound on each store call and connection attempt (default 5s)

`)
	fmt.Fprint(w, storeURLHelp)
	fmt.Fprintln(w)
	fmt.Fprint(w, exitCodesHelp)
	fmt.Fprint(w, `
Examples:
  export GORMCACHE_STORE=redis://127.0.0.1:6379
  gormcache invalidate users orders        # after a write made outside the application
  gormcache flush                          # make every cached result stale
  gormcache versions users
  gormcache inspect gc:1:3q2-7wXQn0S5u3zB8s9aUw
  gormcache set report:daily '{"total": 42}' --ttl 1h --tables orders
  gormcache get report:daily --tables orders
  gormcache pg install-triggers --dsn "host=127.0.0.1 dbname=app" articles products
  gormcache pg listen --dsn "host=127.0.0.1 dbname=app" articles products
  gormcache bench --dsn "host=127.0.0.1 dbname=app" --redis 127.0.0.1:6379

Run 'gormcache COMMAND --help' for a command's flags and examples.
`)
}

func pgHelp(w io.Writer) {
	fmt.Fprint(w, `gormcache pg: writes made outside the application, seen on PostgreSQL through
LISTEN/NOTIFY triggers (package pgnotify) or logical replication (package pgrepl).

Commands:
`)
	for _, c := range commands {
		if strings.HasPrefix(c.name, "pg ") {
			fmt.Fprintf(w, "  %-40s %s\n", c.name+" "+c.args, c.summary)
		}
	}
	fmt.Fprint(w, "\nRun 'gormcache pg COMMAND --help' for a command's flags and examples.\n")
}

func commandHelp(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: gormcache %s [flags] %s\n\n%s.\n", cmd.name, cmd.args, upperFirst(cmd.summary))
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.help))
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	cmd.setup(fs)
	if hasFlags(fs) {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs)
	}
	fmt.Fprint(w, `
Global flags (before or after the command's name):
  --store URL      the store (default $GORMCACHE_STORE); see 'gormcache --help' for URL forms
  --prefix P       the plugin's key prefix, plugin.Config.Prefix (default "gc")
  --timeout D      bound on each store call and connection attempt (default 5s)
`)
	if cmd.examples != "" {
		fmt.Fprintf(w, "\nExamples:\n%s\n", strings.TrimRight(cmd.examples, "\n"))
	}
	fmt.Fprint(w, "\nExit codes: 0 success, 1 runtime error, 2 usage error")
	if cmd.notFound {
		fmt.Fprint(w, ", 3 no live entry under the key (absent, expired or stale)")
	}
	if cmd.noTarget {
		fmt.Fprint(w, ", 4 no version of \"*\" under the prefix before the bump: the store or prefix is not the application's")
	}
	fmt.Fprintln(w, ".")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// printFlags prints fs's flags as --name VALUE, with their defaults.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	var fl []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { fl = append(fl, f) })
	sort.Slice(fl, func(i, j int) bool { return fl[i].Name < fl[j].Name })
	for _, f := range fl {
		name, usage := flag.UnquoteUsage(f)
		head := "--" + f.Name
		if name != "" {
			head += " " + name
		}
		line := fmt.Sprintf("  %-24s %s", head, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			def := f.DefValue
			if fmt.Sprintf("%T", f.Value) == "*flag.stringValue" {
				def = strconv.Quote(def)
			}
			line += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintln(w, line)
	}
}

// envDefault is v, or the environment variable name when v is empty.
func envDefault(v, name string) string {
	if v == "" {
		return os.Getenv(name)
	}
	return v
}

// withTimeout bounds one call by --timeout.
func (e *env) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.g.timeout)
}
