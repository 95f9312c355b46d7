package pgrepl

import (
	"testing"
	"time"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
)

type Item struct {
	ID int
	N  int
}

// TestInvalidatedSlot: a slot PostgreSQL invalidated (it held more WAL
// than max_slot_wal_keep_size while no listener ran) is made again, and
// every watched table is bumped: the write it held is seen.
func TestInvalidatedSlot(t *testing.T) {
	t.Parallel()
	c := testdb.PrivatePostgres(t, "max_slot_wal_keep_size = 1MB", "min_wal_size = 32MB", "max_wal_size = 64MB")
	raw := connect(t, c.DSN)
	outside(t, raw, `CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL)`)
	outside(t, raw, `INSERT INTO items VALUES (1, 0)`)
	db, p := openGORM(t, c.DSN)
	cfg := Config{Tables: []string{"items"}, Slot: "s", Publication: "p", Logger: quiet(), ReconnectMin: 50 * time.Millisecond}
	l := listen(t, c.DSN, p, cfg)
	bumped(t, l, outside(t, raw, `UPDATE items SET n = 1 WHERE id = 1`))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	read := func() int {
		t.Helper()
		var it Item
		if err := db.First(&it, 1).Error; err != nil {
			t.Fatal(err)
		}
		return it.N
	}
	if read() != 1 || read() != 1 {
		t.Fatal("not read back")
	}
	outside(t, raw, `UPDATE items SET n = 2 WHERE id = 1`) // held by the slot, until it is lost
	for i := 0; ; i++ {
		var status string
		if err := raw.QueryRow(t.Context(), `SELECT wal_status FROM pg_replication_slots WHERE slot_name = 's'`).Scan(&status); err != nil {
			t.Fatal(err)
		}
		if status == "lost" {
			break
		}
		if i == 50 {
			t.Fatalf("the slot is %s after %d WAL switches", status, i)
		}
		outside(t, raw, `INSERT INTO items SELECT g, 0 FROM generate_series(1000 * $1::int + 2, 1000 * $1::int + 1001) g`, i)
		outside(t, raw, `SELECT pg_switch_wal()`)
		outside(t, raw, `CHECKPOINT`)
	}
	if read() != 1 {
		t.Fatal("the write made while the listener was down is seen without it") // (the premise)
	}
	l = listen(t, c.DSN, p, cfg)
	if s := l.Stats(); s.Resyncs != 1 {
		t.Errorf("a listener on an invalidated slot: %+v", s)
	}
	testsupport.EventuallyWithin(t, "the resync bump", 30*time.Second, func() bool { return l.Stats().Bumps >= 1 })
	if n := read(); n != 2 {
		t.Fatalf("after the resync, item 1 reads %d, want 2", n)
	}
	var status string
	if err := raw.QueryRow(t.Context(), `SELECT wal_status FROM pg_replication_slots WHERE slot_name = 's'`).Scan(&status); err != nil || status == "lost" {
		t.Errorf("the slot was not made again: %q, %v", status, err)
	}
	bumped(t, l, outside(t, raw, `UPDATE items SET n = 3 WHERE id = 1`))
	if n := read(); n != 3 {
		t.Errorf("on the new slot, item 1 reads %d, want 3", n)
	}
}
