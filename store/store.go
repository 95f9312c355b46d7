package store

import (
	"context"
	"errors"
	"time"
)

// GlobalTag is the tag every cached value depends on. Bumping it invalidates
// everything at once (a write whose tables are unknown, DDL, a flush).
const GlobalTag = "*"

// Errors a store returns, wrapped with detail; check them with errors.Is.
var (
	// ErrUnavailable means the store could not be reached or did not answer
	// in time. Callers fail open: the query goes to the database.
	ErrUnavailable = errors.New("gormcache/store: store unavailable")
	// ErrTooLarge means a value exceeds what the store accepts.
	ErrTooLarge = errors.New("gormcache/store: value too large")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("gormcache/store: store closed")
	// ErrInvalidConfig is wrapped by the errors the New functions of this
	// module's stores return for a bad Config; the message names the field.
	ErrInvalidConfig = errors.New("gormcache/store: invalid config")
)

// Store is a cache backend. Implementations are safe for concurrent use.
//
// Versions are uint64 values that are never 0 for a known, unheld tag and
// never repeat for a tag, even after the store lost its data: a missing
// version reads as 0, which callers treat as "unknown: do not serve, do not
// store".
type Store interface {
	// Get returns the value stored under key, or nil with a nil error when
	// there is none, and fills versions[i] with the current version of
	// tags[i] (0 when unknown or held). len(versions) must be len(tags).
	// A backend reads both in one round trip.
	Get(ctx context.Context, key string, tags []string, versions []uint64) ([]byte, error)

	// Set stores value under key for ttl (ttl <= 0 means no expiry other
	// than eviction). The store may keep value: callers must not modify it
	// afterwards.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error

	// Delete removes keys; absent keys are not an error.
	Delete(ctx context.Context, keys ...string) error

	// Versions fills versions[i] with the current version of tags[i], as Get does.
	Versions(ctx context.Context, tags []string, versions []uint64) error

	// A tag holding the byte 0x1f is a row tag (a table's rows by key
	// value): there is one per row read or written, so a store should let
	// its version go some time after it was set (an hour in redisstore and
	// memstore). A version that is gone reads as a new one, which only
	// invalidates what was stamped with the old: safe.
	//
	// Bump gives every tag a new version. When hold > 0 it also holds the
	// tags (they read as version 0) until Release is called with the
	// returned lease id, or until hold has elapsed. The bumps of one call
	// are one round trip.
	Bump(ctx context.Context, tags []string, hold time.Duration) (lease uint64, err error)

	// Release bumps tags again and drops the hold of lease on them.
	Release(ctx context.Context, tags []string, lease uint64) error

	// Close releases the store's resources.
	Close() error
}

// CodecUser is implemented by a ValueStore that also keeps bytes (a
// two-level store: Go values in process, bytes in a shared store). The
// plugin gives it the entry codec before first use, unless the store was
// configured with a codec of its own.
type CodecUser interface {
	UseCodec(encode func(v any) ([]byte, error), decode func(b []byte) (any, error))
}

// ValueStore is implemented by in-process stores that can keep Go values
// as they are, so that a hit costs no decoding at all. The plugin stores
// decoded entries through it when the store has it.
type ValueStore interface {
	// GetValue is Get for values set with SetValue.
	GetValue(ctx context.Context, key string, tags []string, versions []uint64) (any, error)
	// SetValue stores v, which holds about size bytes, for ttl.
	SetValue(ctx context.Context, key string, v any, size int, ttl time.Duration) error
}
