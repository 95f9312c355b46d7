package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/serializer"
	"github.com/gormcache/gormcache/store"
)

// ErrWriteRefused is wrapped, with store.ErrUnavailable, by the error of a
// write refused before it reached the database because its tables could
// not be invalidated in the store first (Config.BumpFailure FailWrite).
var ErrWriteRefused = core.ErrWriteRefused

// BumpFailure is what a write does when its first bump fails (see
// Config.BumpFailure).
type BumpFailure int

const (
	// FailWrite fails the write before it reaches the database, with an
	// error wrapping store.ErrUnavailable: nothing changed, so no instance
	// can serve data older than it, and the guarantee holds whole. Writes
	// fail while the store cannot be reached. The in-process default store
	// never fails a bump.
	FailWrite BumpFailure = iota
	// ProceedWrite runs the write anyway. This instance serves nothing of
	// its tables from the store until a bump of them lands (retried in the
	// background with a backoff of up to 5 s, and once more, bounded by
	// StoreTimeout, at Close, which logs what it could not bump). Other
	// instances may serve entries from before the write meanwhile: while
	// the store stays unreachable from this instance, up to the entries'
	// TTL.
	ProceedWrite
)

func (b BumpFailure) String() string {
	switch b {
	case FailWrite:
		return "FailWrite"
	case ProceedWrite:
		return "ProceedWrite"
	}
	return fmt.Sprintf("BumpFailure(%d)", int(b))
}

// Forever, as a TTL, keeps entries until a write invalidates them or the
// store evicts them (Django's TIMEOUT=None).
const Forever time.Duration = -1

// Defaults used for the zero values of [Config].
const (
	DefaultTTL          = 5 * time.Minute // Django's 300 s
	DefaultMaxRows      = 10_000
	DefaultMaxBytes     = 1 << 20 // 1 MiB per entry, memcached's item limit
	DefaultWriteLease   = time.Minute
	DefaultStoreTimeout = 100 * time.Millisecond
	// DefaultReplicaWindow is the default Config.ReplicaWindow.
	DefaultReplicaWindow = 2 * time.Second
	// DefaultCatalogRefresh is the default Config.CatalogRefresh.
	DefaultCatalogRefresh = time.Minute
)

// ErrInvalidConfig is wrapped by every error Initialize returns for a bad Config.
var ErrInvalidConfig = errors.New("gormcache: invalid config")

// Config configures the plugin. The zero Config is ready to use: an
// in-process memory store of 64 MiB, entries kept 5 minutes, everything on.
type Config struct {
	// Store holds entries and table versions. nil means a new in-process
	// memstore of MemoryBytes, owned (and closed) by the plugin. Use a shared
	// store (Redis, Memcached) when several processes must see each other's
	// writes.
	Store store.Store

	// MemoryBytes bounds the default in-process store. 0 means 64 MiB.
	// Ignored when Store is set.
	MemoryBytes int64

	// TTL is how long an entry may be served. 0 means DefaultTTL; Forever
	// means until invalidated or evicted. Other negative values are errors.
	TTL time.Duration

	// MaxRows is the largest result stored, in rows; larger results are
	// served from the database and counted. 0 means DefaultMaxRows.
	MaxRows int

	// MaxBytes is the largest result stored, in estimated bytes. 0 means
	// DefaultMaxBytes.
	MaxBytes int

	// Prefix namespaces every key in the store, for several applications on
	// one store. "" means "gc".
	Prefix string

	// Identity names the database, so that two databases (or tenants,
	// search_paths, users) sharing one store never share entries. "" means:
	// asked from the database at Initialize: server address, port, database
	// and user, and on PostgreSQL the search_path, primary or standby and the
	// system identifier (readable by superusers and pg_monitor; else the
	// server's start time); on MySQL @@server_uuid, on MariaDB @@server_uid;
	// on SQLite the host name and the file's path. Set it when hosts that
	// share a store can tell the same (SQLite files at one path on hosts of
	// one name, cloned servers). It names keys only: one Plugin still serves
	// one database (see [ErrOtherDatabase]).
	Identity string

	// WriteLease bounds how long a write may hold its tables (while a
	// transaction that wrote them is open, their queries go to the
	// database), so that a process dying mid-transaction cannot block them
	// for ever. It is also the grace window of writes made in a transaction
	// the plugin did not begin (one begun on db.Connection's *sql.Conn, or
	// before db.Use): their tables are bumped and held for WriteLease after
	// each write, and such a transaction that commits later than that after
	// its last write can leave stale entries until the TTL. 0 means
	// DefaultWriteLease.
	WriteLease time.Duration

	// StoreTimeout bounds each store call; a slower store is a miss. 0 means
	// DefaultStoreTimeout.
	StoreTimeout time.Duration

	// StableFunctions names SQL functions (lower case, as called) that are
	// deterministic and read-only, so that queries calling them may be
	// cached. Built-ins such as count, lower or coalesce are known already;
	// any other function makes a query bypass the cache, and a statement
	// calling it invalidates everything, since it may write.
	StableFunctions []string

	// TableLevel makes every cached result depend on whole tables, as
	// before row-level invalidation: any write to a table invalidates all
	// its results. By default a read whose WHERE binds the table's primary
	// key (one integer column) to values (id = ?, id IN (…)) depends on
	// those rows only, when it found them all. Writes bump row tags either
	// way, so instances with and without TableLevel may share a store (but
	// all instances sharing a store must run a version that bumps them).
	TableLevel bool

	// CompressAbove is the encoded size above which entries for a byte
	// store (Redis, Memcached; not the in-process store, which keeps decoded
	// entries) are compressed with S2. 0 means
	// serializer.DefaultCompressAbove (1 KiB); negative means never.
	// MaxBytes applies to the stored, compressed size.
	CompressAbove int

	// TableTTL sets the TTL of results that read a table (as GORM or SQL
	// names it); a result reading several such tables keeps the shortest.
	// Forever is allowed. A per-query TTL option overrides it.
	TableTTL map[string]time.Duration

	// Deny lists tables whose data is never cached: a query reading any of
	// them always goes to the database (the place for secrets: sessions,
	// tokens, password hashes). Writes to them still invalidate.
	Deny []string

	// Allow, when not empty, lists the only tables that may be cached: a
	// query reading any other table goes to the database. A table may not
	// be in both Allow and Deny.
	Allow []string

	// OptIn caches only statements that ask for it with a TTL or Cache
	// option (for teams that want to start small).
	OptIn bool

	// TTLJitter shortens each entry's TTL by a random fraction up to this
	// (0.1: up to 10%), so that entries stored together do not all expire
	// together. 0 means none; it must be below 1.
	TTLJitter float64

	// StaleWhileRevalidate, when positive, keeps entries this long after
	// their TTL: a query whose entry has outlived its TTL (but was not
	// invalidated: no write touched its tables) is answered from it at once
	// while one background query refreshes it. Entries made stale by a
	// write are never served. 0 (the default) means off.
	StaleWhileRevalidate time.Duration

	// SkipEmpty does not store results with no rows (by default they are
	// cached like any other: "no such user" is an answer too, and First,
	// Take and Last give gorm.ErrRecordNotFound on a hit as on a miss).
	SkipEmpty bool

	// BumpFailure says what a write does when the bump that must come
	// before it cannot be placed in a shared store (the store is down or
	// too slow, or this instance's circuit breaker is open): FailWrite, the
	// default, or ProceedWrite.
	BumpFailure BumpFailure

	// EmptyTTL, when positive, is the TTL of results with no rows, if it
	// is shorter than theirs would be: lookups of ids that do not exist
	// (or not yet) stay cached for less time. 0 means the same TTL as any
	// other result. The insert that creates a row invalidates them anyway.
	EmptyTTL time.Duration

	// Version is part of every key, like Django's VERSION: changing it
	// (say, with a deployment that changes models) leaves every entry of
	// the other versions unused. At run time, Flush drops everything.
	Version int

	// NoHitMarker leaves a hit's SQL as it is. By default a statement
	// served from the cache has "/* gormcache hit */ " put before its SQL
	// once it has run, so that GORM's logger (and tracing plugins that
	// record the SQL) show which statements the cache answered. AfterFind
	// hooks see the SQL without it, as plain GORM shows it.
	NoHitMarker bool

	// ReplicaWindow bounds how far behind its source a read replica may be
	// (gorm.io/plugin/dbresolver): a result read through any pool other
	// than the one the plugin was installed on is stored only once every
	// table it read has kept its version this long, so that rows a lagging
	// replica returns right after a write are never cached as fresh. Set it
	// above the worst replica lag you accept. 0 means DefaultReplicaWindow.
	ReplicaWindow time.Duration

	// ReplicaHeartbeat names a table (created on the source if missing,
	// replicated like any other) in which the plugin writes the time every
	// quarter of ReplicaWindow and reads it back through each replica: a
	// replica further behind than ReplicaWindow, or that cannot say, is not
	// used to fill the cache until it catches up. "" means no heartbeat:
	// the window alone is then a bet on the replicas' lag.
	ReplicaHeartbeat string

	// OnHit, if set, is called with the statement's context each time a
	// statement is served from the cache (or by an identical query running
	// at the same time), after the rows were scanned: the place to mark a
	// tracing span (see the tracing/gcotel package) or count by request.
	OnHit func(ctx context.Context)

	// CatalogRefresh is how often the database's catalog (foreign keys,
	// views, triggers, partitions, keys, tables) is read again, in the
	// background, to see schema changes made elsewhere (a migration job,
	// another instance): zero means every minute, a negative value never.
	// It is also read again after DDL through the plugin, and (at most once
	// a second) when a statement names a table it does not list; a read
	// that finds foreign keys, views or triggers changed invalidates
	// everything once.
	CatalogRefresh time.Duration

	// WithoutCatalog lets the plugin cache on a dialect whose catalog it
	// cannot read (anything but PostgreSQL, MySQL/MariaDB and SQLite):
	// foreign-key cascades, views, triggers and partitions are then not
	// followed, and a statement's tables are all it depends on. Without it
	// nothing is cached on such a dialect (reason no_catalog).
	WithoutCatalog bool

	// Dependencies names, for a view or a table written by triggers, the
	// tables its content comes from: a read of the key depends on those
	// tables too, so a write to any of them invalidates it. Foreign-key
	// cascades, views and partitions are read from the database's catalog
	// already; declare what the catalog cannot tell: a view that calls a
	// function reading other tables, or a trigger that writes elsewhere
	// (for a trigger on orders that inserts into audit_log:
	// "audit_log": {"orders"}). A table whose trigger writes tables the
	// plugin cannot determine makes each write to it invalidate everything,
	// unless it is named here as a source.
	Dependencies map[string][]string

	// Logger receives the plugin's logs. nil means slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c, checked, with the defaults for its zero fields:
// the one way every Config of the module is validated and defaulted
// (the stores', lowlevel's, viewcache's and pgnotify's too).
func (c Config) withDefaults() (Config, error) {
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	c.setDefaults()
	return c, nil
}

func (c *Config) validate() error {
	switch {
	case c.TTL < 0 && c.TTL != Forever:
		return fmt.Errorf("%w: TTL must be positive, 0 (default) or Forever, got %v", ErrInvalidConfig, c.TTL)
	case c.MemoryBytes < 0:
		return fmt.Errorf("%w: MemoryBytes must not be negative, got %d", ErrInvalidConfig, c.MemoryBytes)
	case c.MaxRows < 0:
		return fmt.Errorf("%w: MaxRows must not be negative, got %d", ErrInvalidConfig, c.MaxRows)
	case c.MaxBytes < 0:
		return fmt.Errorf("%w: MaxBytes must not be negative, got %d", ErrInvalidConfig, c.MaxBytes)
	case c.BumpFailure != FailWrite && c.BumpFailure != ProceedWrite:
		return fmt.Errorf("%w: unknown BumpFailure %d", ErrInvalidConfig, c.BumpFailure)
	case c.EmptyTTL < 0:
		return fmt.Errorf("%w: EmptyTTL must not be negative, got %v", ErrInvalidConfig, c.EmptyTTL)
	case c.WriteLease < 0:
		return fmt.Errorf("%w: WriteLease must not be negative, got %v", ErrInvalidConfig, c.WriteLease)
	case c.StoreTimeout < 0:
		return fmt.Errorf("%w: StoreTimeout must not be negative, got %v", ErrInvalidConfig, c.StoreTimeout)
	}
	if c.StaleWhileRevalidate < 0 {
		return fmt.Errorf("%w: StaleWhileRevalidate must not be negative, got %v", ErrInvalidConfig, c.StaleWhileRevalidate)
	}
	if c.ReplicaWindow < 0 {
		return fmt.Errorf("%w: ReplicaWindow must not be negative, got %v", ErrInvalidConfig, c.ReplicaWindow)
	}
	if c.ReplicaHeartbeat != "" && !validIdent(c.ReplicaHeartbeat) {
		return fmt.Errorf("%w: ReplicaHeartbeat must be a plain table name (letters, digits, _), got %q", ErrInvalidConfig, c.ReplicaHeartbeat)
	}
	if c.TTLJitter < 0 || c.TTLJitter >= 1 {
		return fmt.Errorf("%w: TTLJitter must be in [0, 1), got %v", ErrInvalidConfig, c.TTLJitter)
	}
	for name, d := range c.TableTTL {
		if invalidation.TableName(name) == "" {
			return fmt.Errorf("%w: TableTTL has an empty table name", ErrInvalidConfig)
		}
		if d <= 0 && d != Forever {
			return fmt.Errorf("%w: TableTTL[%q] must be positive or Forever, got %v", ErrInvalidConfig, name, d)
		}
	}
	deny := map[string]bool{}
	for _, t := range c.Deny {
		n := invalidation.TableName(t)
		if n == "" {
			return fmt.Errorf("%w: Deny has an empty table name", ErrInvalidConfig)
		}
		deny[n] = true
	}
	for _, t := range c.Allow {
		n := invalidation.TableName(t)
		if n == "" {
			return fmt.Errorf("%w: Allow has an empty table name", ErrInvalidConfig)
		}
		if deny[n] {
			return fmt.Errorf("%w: table %q is in both Allow and Deny", ErrInvalidConfig, t)
		}
	}
	if c.Version < 0 {
		return fmt.Errorf("%w: Version must not be negative, got %d", ErrInvalidConfig, c.Version)
	}
	for name, srcs := range c.Dependencies {
		if invalidation.TableName(name) == "" {
			return fmt.Errorf("%w: Dependencies has an empty table name", ErrInvalidConfig)
		}
		for _, s := range srcs {
			if invalidation.TableName(s) == "" {
				return fmt.Errorf("%w: Dependencies[%q] has an empty table name", ErrInvalidConfig, name)
			}
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.MaxRows == 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Prefix == "" {
		c.Prefix = "gc"
	}
	switch {
	case c.CompressAbove == 0:
		c.CompressAbove = serializer.DefaultCompressAbove
	case c.CompressAbove < 0:
		c.CompressAbove = 0 // serializer.Options: 0 = never
	}
	if c.ReplicaWindow == 0 {
		c.ReplicaWindow = DefaultReplicaWindow
	}
	if c.WriteLease == 0 {
		c.WriteLease = DefaultWriteLease
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.CatalogRefresh == 0 {
		c.CatalogRefresh = DefaultCatalogRefresh
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// validIdent reports whether s is a plain SQL identifier, safe to write
// into a statement as it is.
func validIdent(s string) bool {
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != "" && len(s) <= 63
}
