package pgrepl

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
)

// Defaults of [Config].
const (
	// DefaultPublication is the publication of a Config that names none.
	DefaultPublication = "gormcache"
	// DefaultSlot is the replication slot of a Config that names none.
	DefaultSlot = "gormcache"
)

// Errors of this package, wrapped with detail; check them with errors.Is.
var (
	// ErrInvalidConfig reports a Config or an argument that cannot work.
	ErrInvalidConfig = errors.New("pgrepl: invalid configuration")
	// ErrNotTable reports a name in Config.Tables that is not an existing
	// table (or partitioned table) of the database.
	ErrNotTable = errors.New("pgrepl: not a table")
	// ErrNoReplicaIdentity reports a table that cannot be published as it
	// is: it has no primary key (nor REPLICA IDENTITY USING INDEX or
	// FULL), so PostgreSQL would refuse its UPDATEs and DELETEs once it is
	// in a publication. Add a primary key, or ALTER TABLE … REPLICA
	// IDENTITY FULL.
	ErrNoReplicaIdentity = errors.New("pgrepl: table has no replica identity")
	// ErrServer reports a server that cannot stream changes as the
	// listener needs (wal_level is not logical; a publication that leaves
	// out some writes; a slot of another plugin or database).
	ErrServer = errors.New("pgrepl: server not set up for logical replication")
	// ErrSlotActive reports a slot another process streams from (another
	// listener with the same Config.Slot).
	ErrSlotActive = errors.New("pgrepl: replication slot in use by another process")
	// ErrMalformed reports a message of the stream that could not be
	// decoded. The listener counts it (Stats.Malformed) and bumps every
	// watched table at the commit that follows: nothing is lost.
	ErrMalformed = errors.New("pgrepl: malformed replication message")
)

// Config configures [Listen]. A zero Config consists entirely of defaults,
// except that a publication that does not exist yet needs Tables.
type Config struct {
	// Tables are the watched tables, as SQL names them (articles,
	// shop.articles, "Shop"."Orders"): the publication is created with
	// them, or they are added to it. Empty means the tables the
	// publication already has (it must exist). Changes to every table of
	// the publication are honoured.
	Tables []string

	// Publication is the publication to stream (created if missing);
	// blank means [DefaultPublication]. Slot is the logical replication
	// slot (created if missing, with the pgoutput plugin); blank means
	// [DefaultSlot]. Both are lower-case names of letters, digits and
	// underscores. One slot serves one listener at a time: give each
	// application instance (or run one sidecar) its own.
	Publication, Slot string

	// StatusInterval is how often the listener tells the server the
	// position up to which every commit has been bumped (the slot's
	// confirmed_flush_lsn, from which a restarted listener resumes; the
	// server may then recycle the WAL before it). Zero means 1s.
	StatusInterval time.Duration

	// HealthInterval is how often the listener checks that its connection
	// is alive: when nothing arrived since the last check, it asks the
	// server for a reply, and when none has come by the next check, it
	// reconnects. Zero means 15s; negative disables the check.
	HealthInterval time.Duration

	// ReconnectMin and ReconnectMax bound the wait before each attempt to
	// reconnect, which doubles from ReconnectMin up to ReconnectMax (with
	// a little jitter). Zero means 100ms and 10s. The same backoff spaces
	// the retries of a bump the store refused.
	ReconnectMin, ReconnectMax time.Duration

	// Logger receives losses, recoveries, resynchronisations and failed
	// bumps (at most one line a second for what repeats); nil means
	// slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c, checked, with the defaults for its zero fields
// (the module's one convention for a Config).
func (c Config) withDefaults() (Config, error) {
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	c.setDefaults()
	return c, nil
}

func (c *Config) validate() error {
	if problem := core.BackoffProblem(c.ReconnectMin, c.ReconnectMax); problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, problem)
	}
	if c.StatusInterval < 0 {
		return fmt.Errorf("%w: negative StatusInterval", ErrInvalidConfig)
	}
	for _, t := range c.Tables {
		if invalidation.TableName(t) == "" {
			return fmt.Errorf("%w: empty table name in Tables", ErrInvalidConfig)
		}
	}
	for _, n := range [][2]string{{"Publication", c.Publication}, {"Slot", c.Slot}} {
		if n[1] != "" && !simpleName(n[1]) {
			return fmt.Errorf("%w: %s %q: want 1 to 63 lower-case letters, digits and underscores", ErrInvalidConfig, n[0], n[1])
		}
	}
	return nil
}

// simpleName reports whether s is a name PostgreSQL takes for a slot (and
// that needs no quoting anywhere).
func simpleName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (c *Config) setDefaults() {
	if c.Publication == "" {
		c.Publication = DefaultPublication
	}
	if c.Slot == "" {
		c.Slot = DefaultSlot
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = time.Second
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 15 * time.Second
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(10*time.Second, c.ReconnectMin)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
