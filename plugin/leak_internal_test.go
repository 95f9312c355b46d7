package plugin

import (
	"context"
	"database/sql"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// cancelAfter runs the real query, then cancels the caller's context: a
// deadline that passes right after the database answered.
type cancelAfter struct {
	gorm.ConnPool
	cancel context.CancelFunc
}

func (c cancelAfter) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	r, err := c.ConnPool.QueryContext(context.WithoutCancel(ctx), q, args...)
	c.cancel()
	return r, err
}

// Regression: when the replay of a Row() fails, the real rows are closed
// and a write's hold is released (it leaked and stayed held before).
func TestQueryRowFailureReleases(t *testing.T) {
	t.Parallel()
	db := testdb.Open(t, "sqlite", &gorm.Config{Logger: logger.Discard})
	db.Exec("CREATE TABLE t (id int)")
	db.Exec("INSERT INTO t VALUES (1)")
	p := New(Config{})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sqlDB, _ := db.DB()
	ctx, cancel := context.WithCancel(context.Background())
	sp := &stmtPool{p: p, inner: cancelAfter{sqlDB, cancel}}
	var id int
	if err := sp.QueryRowContext(ctx, "UPDATE t SET id = 2 RETURNING id").Scan(&id); err == nil {
		t.Fatal("Row with a cancelled context: no error")
	}
	v := make([]uint64, 1)
	if err := p.store.Versions(context.Background(), []string{"t"}, v); err != nil || v[0] == 0 {
		t.Fatalf("table t still held after the failed Row (version %d, %v)", v[0], err)
	}
	if n := sqlDB.Stats().InUse; n != 0 {
		t.Fatalf("%d connections still in use: the real rows leaked", n)
	}
}
