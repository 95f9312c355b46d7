// Package nulldb is a database/sql driver that answers instantly with canned
// rows, and a GORM dialector over it. It measures "GORM plus database/sql
// with a zero-latency database": the baseline against which the cache's hit
// path is compared (a hit replayed through a driver can only add to it).
//
// Every query returns the configured result; every Exec reports one row
// affected; transactions commit and roll back without doing anything. The
// GORM dialector is gorm.io/driver/postgres over this driver, so GORM builds
// the same SQL it builds for PostgreSQL, without touching a server.
package nulldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"sync"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// DriverName is the name the driver is registered under with database/sql:
// sql.Open(DriverName, name) uses the Config given to Register(name, …).
const DriverName = "gormcache-null"

// Result is one canned query result. Values are driver values (int64,
// float64, bool, []byte, string, time.Time or nil), one slice per row.
type Result struct {
	Columns []string
	Rows    [][]driver.Value
}

// Config says what the database answers.
type Config struct {
	// Respond returns the result of a query. nil, or a nil return, means
	// Result.
	Respond func(query string, args []driver.NamedValue) *Result
	// Result is the answer to every query Respond does not answer. nil means
	// no columns and no rows.
	Result *Result
}

func (c *Config) result(query string, args []driver.NamedValue) *Result {
	if c.Respond != nil {
		if r := c.Respond(query, args); r != nil {
			return r
		}
	}
	if c.Result != nil {
		return c.Result
	}
	return &Result{}
}

var (
	registryMu sync.RWMutex
	registry   = map[string]*Config{}
)

func init() { sql.Register(DriverName, Driver{}) }

// Register makes sql.Open(DriverName, name) answer as cfg says.
func Register(name string, cfg Config) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[name] = &cfg
}

// Driver is the database/sql driver. Its data source names are the names
// given to Register.
type Driver struct{}

var _ driver.DriverContext = Driver{}

// Open implements driver.Driver.
func (Driver) Open(name string) (driver.Conn, error) {
	c, err := Driver{}.OpenConnector(name)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

// OpenConnector implements driver.DriverContext.
func (Driver) OpenConnector(name string) (driver.Connector, error) {
	registryMu.RLock()
	cfg, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, errors.New("nulldb: no configuration registered as " + name)
	}
	return &connector{cfg: cfg}, nil
}

// NewConnector returns a connector answering as cfg says, for sql.OpenDB.
func NewConnector(cfg Config) driver.Connector { return &connector{cfg: &cfg} }

// Open returns a *sql.DB answering as cfg says.
func Open(cfg Config) *sql.DB { return sql.OpenDB(NewConnector(cfg)) }

// Dialector returns a GORM dialector (PostgreSQL's SQL) over a new *sql.DB
// answering as cfg says.
func Dialector(cfg Config) gorm.Dialector {
	return postgres.New(postgres.Config{Conn: Open(cfg)})
}

type connector struct{ cfg *Config }

func (c *connector) Connect(context.Context) (driver.Conn, error) { return &conn{cfg: c.cfg}, nil }
func (c *connector) Driver() driver.Driver                        { return Driver{} }

type conn struct{ cfg *Config }

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
)

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return &stmt{c: c, query: query}, nil
}

func (c *conn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return &stmt{c: c, query: query}, nil
}

func (c *conn) Close() error { return nil }

func (c *conn) Begin() (driver.Tx, error) { return tx{}, nil }

func (c *conn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) { return tx{}, nil }

func (c *conn) Ping(context.Context) error { return nil }

// CheckNamedValue accepts every argument as it is, as pgx does for the types
// GORM passes.
func (c *conn) CheckNamedValue(*driver.NamedValue) error { return nil }

func (c *conn) QueryContext(_ context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return &rows{res: c.cfg.result(query, args), row: -1}, nil
}

func (c *conn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}

type stmt struct {
	c     *conn
	query string
}

func (s *stmt) Close() error  { return nil }
func (s *stmt) NumInput() int { return -1 }

func (s *stmt) Exec([]driver.Value) (driver.Result, error) { return driver.RowsAffected(1), nil }

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	named := make([]driver.NamedValue, len(args))
	for i, v := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return s.c.QueryContext(context.Background(), s.query, named)
}

func (s *stmt) ExecContext(context.Context, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

type tx struct{}

func (tx) Commit() error   { return nil }
func (tx) Rollback() error { return nil }

type rows struct {
	res *Result
	row int
}

func (r *rows) Columns() []string { return r.res.Columns }
func (r *rows) Close() error      { return nil }

func (r *rows) Next(dest []driver.Value) error {
	if r.row+1 >= len(r.res.Rows) {
		r.row = len(r.res.Rows)
		return io.EOF
	}
	r.row++
	copy(dest, r.res.Rows[r.row])
	return nil
}
