package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gormcache/gormcache/plugin"
	"github.com/gormcache/gormcache/tracing/gcotel"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
)

// hitCount counts the statements of one read that the cache answered.
type hitCount struct{}

// mixedShape is one of the read shapes of TestReplicaMixedLoad; statements
// is how many statements it runs (each a hit once the tables are quiet).
type mixedShape struct {
	name       string
	statements int64
	read       func(db *gorm.DB, i int) error
}

var mixedShapes = []mixedShape{
	{"First", 1, func(db *gorm.DB, i int) error {
		var a Account
		return db.First(&a, 1+i%2).Error
	}},
	{"Find", 1, func(db *gorm.DB, i int) error {
		var as []Account
		return db.Where("balance >= ?", 0).Order("id").Find(&as).Error
	}},
	{"Raw", 1, func(db *gorm.DB, i int) error {
		var a Account
		return db.Raw("SELECT id, owner, balance FROM accounts WHERE id = ?", 1+i%2).Scan(&a).Error
	}},
	{"Pluck", 1, func(db *gorm.DB, i int) error {
		var owners []string
		return db.Model(&Account{}).Order("id").Pluck("owner", &owners).Error
	}},
	{"Row", 1, func(db *gorm.DB, i int) error {
		var sum int64
		return db.Model(&Account{}).Select("COALESCE(SUM(balance), 0)").Row().Scan(&sum)
	}},
	{"Count", 1, func(db *gorm.DB, i int) error {
		var n int64
		return db.Model(&User{}).Where("age >= ?", 0).Count(&n).Error
	}},
	{"join", 1, func(db *gorm.DB, i int) error {
		var rows []struct{ Name, Company string }
		return db.Table("users").Select("users.name AS name, companies.name AS company").
			Joins("JOIN companies ON companies.id = users.company_id").Order("users.id").Scan(&rows).Error
	}},
	{"subquery", 1, func(db *gorm.DB, i int) error {
		var us []User
		return db.Where("company_id IN (?)", db.Table("companies").Select("id")).Order("id").Find(&us).Error
	}},
	{"Preload", 2, func(db *gorm.DB, i int) error {
		var us []User
		return db.Preload("Pets").Order("id").Find(&us).Error
	}},
	{"Joins", 1, func(db *gorm.DB, i int) error {
		var us []User
		return db.Joins("Company").Order("users.id").Find(&us).Error
	}},
	{"Rows", 1, func(db *gorm.DB, i int) error {
		rows, err := db.Model(&Account{}).Where("id <= ?", 4).Order("id").Rows()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a Account
			if err := db.ScanRows(rows, &a); err != nil {
				return err
			}
		}
		return rows.Err()
	}},
}

// TestReplicaMixedLoad: with dbresolver (the replica is the same database
// through a pool of the user's) and the OpenTelemetry plugin, in both
// registration orders, six readers over eleven read shapes and two writers
// on eight rows (plain and nested transactions, associations saved, rows
// created and deleted); once the writers have stopped and the tables have
// been quiet for longer than the ReplicaWindow, reads through the replica
// are served from the cache.
func TestReplicaMixedLoad(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		cacheFirst bool
	}{
		{"cache-then-resolver", true},
		{"resolver-then-cache", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			replicaMixedLoad(t, c.cacheFirst)
		})
	}
}

func replicaMixedLoad(t *testing.T, cacheFirst bool) {
	const (
		window   = 500 * time.Millisecond
		writing  = 1500 * time.Millisecond
		quietAt  = window + 300*time.Millisecond // after the last write
		measure  = time.Second
		minReads = 8 // per shape, once quiet (read longer on a slow machine)
	)
	driverName, dsn := freshDSN(t, "postgres")
	db, err := gorm.Open(dialectorFor("postgres", dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	seedAccounts(t, db)
	if err := db.AutoMigrate(&Company{}, &Language{}, &User{}, &Pet{}, &Toy{}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []int{6, 7, 8} {
		if err := db.Create(&Account{Owner: fmt.Sprintf("owner%d", a), Balance: int64(a * 10)}).Error; err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		c := Company{Name: fmt.Sprintf("company%d", i)}
		if err := db.Create(&c).Error; err != nil {
			t.Fatal(err)
		}
		u := User{Name: fmt.Sprintf("user%d", i), Age: 20 + i, CompanyID: &c.ID, Pets: []Pet{{Name: fmt.Sprintf("pet%d", i)}}}
		if err := db.Create(&u).Error; err != nil {
			t.Fatal(err)
		}
	}

	p := plugin.New(plugin.Config{
		Logger:        quiet,
		ReplicaWindow: window,
		OnHit: func(ctx context.Context) {
			if n, ok := ctx.Value(hitCount{}).(*atomic.Int64); ok {
				n.Add(1)
			}
			gcotel.OnHit(ctx)
		},
	})
	t.Cleanup(func() { p.Close() })
	tracer, _ := newTracing(t)
	replica := &userPool{db: openSQL(t, driverName, dsn)}
	resolver := dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{connDialector("postgres", replica)}})
	order := []gorm.Plugin{p, resolver, tracer}
	if !cacheFirst {
		order = []gorm.Plugin{tracer, resolver, p}
	}
	for _, pl := range order {
		if err := db.Use(pl); err != nil {
			t.Fatal(err)
		}
	}

	type tally struct{ reads, served atomic.Int64 }
	tallies := make([]tally, len(mixedShapes))
	var (
		wg, writers sync.WaitGroup
		writesEnd   = time.Now().Add(writing)
		from        atomic.Int64 // unix nanos: quietAt after the last write returned (0 until then)
		writes      atomic.Int64
	)
	enough := func() bool {
		for i := range tallies {
			if tallies[i].reads.Load() < minReads {
				return false
			}
		}
		return true
	}
	for w := 0; w < 2; w++ {
		writers.Add(1)
		go func(w int) { // eight rows (accounts 1-4, users 1-2, pets 1-2), and toys
			defer writers.Done()
			for n := w; time.Now().Before(writesEnd); n += 2 {
				acct, id := 1+n%4, 1+(n/12)%2
				var err error
				switch n % 12 {
				case 0, 1, 2, 3:
					err = db.Exec("UPDATE accounts SET balance = balance + 1 WHERE id = ?", acct).Error
				case 4, 5:
					err = db.Model(&User{}).Where("id = ?", id).Update("age", gorm.Expr("age + 1")).Error
				case 6, 7:
					err = db.Model(&Pet{}).Where("id = ?", id).Update("name", fmt.Sprintf("pet%d-%d", id, n)).Error
				case 8: // a transaction, with a nested one rolled back to its savepoint
					err = db.Transaction(func(tx *gorm.DB) error {
						if err := tx.Model(&Account{}).Where("id = ?", acct).Update("balance", gorm.Expr("balance + 1")).Error; err != nil {
							return err
						}
						_ = tx.Transaction(func(tx2 *gorm.DB) error {
							tx2.Model(&Account{}).Where("id = ?", acct).Update("balance", -1)
							return errors.New("roll back")
						})
						return nil
					})
				case 9: // a user and its pets saved together
					var u User
					if err = db.Clauses(dbresolver.Write).Preload("Pets").First(&u, id).Error; err == nil {
						u.Age++
						u.Pets[0].Name = fmt.Sprintf("pet%d-%d", id, n)
						err = db.Session(&gorm.Session{FullSaveAssociations: true}).Save(&u).Error
					}
				case 10:
					toy := Toy{PetID: uint(id), Name: "t"}
					if err = db.Create(&toy).Error; err == nil {
						err = db.Delete(&toy).Error
					}
				case 11: // a transaction on the source, named through dbresolver
					err = db.Clauses(dbresolver.Write).Transaction(func(tx *gorm.DB) error {
						return tx.Exec("UPDATE users SET age = age + 1 WHERE id = ?", id).Error
					})
				}
				if err != nil {
					t.Errorf("write: %v", err)
					return
				}
				writes.Add(1)
				time.Sleep(time.Millisecond)
			}
		}(w)
	}
	go func() {
		writers.Wait()
		from.Store(time.Now().Add(quietAt).UnixNano())
	}()
	for r := 0; r < 6; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			for n := r; ; n++ {
				if f := from.Load(); f != 0 {
					if end := time.Unix(0, f).Add(measure); time.Now().After(end.Add(10*time.Second)) || time.Now().After(end) && enough() {
						return
					}
				}
				sh := &mixedShapes[n%len(mixedShapes)]
				hits := new(atomic.Int64)
				began := time.Now()
				ctx := context.WithValue(context.Background(), hitCount{}, hits)
				if err := sh.read(db.WithContext(ctx), n); err != nil {
					t.Errorf("%s: %v", sh.name, err)
					return
				}
				if f := from.Load(); f != 0 && began.UnixNano() > f {
					tl := &tallies[n%len(mixedShapes)]
					tl.reads.Add(1)
					if hits.Load() == sh.statements {
						tl.served.Add(1)
					}
				}
			}
		}(r)
	}
	wg.Wait()
	writers.Wait()

	st := p.Stats()
	reasons := make([]string, 0, len(st.Bypasses))
	for k, v := range st.Bypasses {
		reasons = append(reasons, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(reasons)
	var line string
	for i, sh := range mixedShapes {
		line += fmt.Sprintf(" %s %d/%d", sh.name, tallies[i].served.Load(), tallies[i].reads.Load())
	}
	t.Logf("%d writes; served/read once quiet:%s; hits=%d misses=%d stores=%d bypasses=%v replica reads=%d",
		writes.Load(), line, st.Hits, st.Misses, st.Stores, reasons, replica.reads.Load())
	if writes.Load() == 0 {
		t.Fatal("no write ran")
	}
	if replica.reads.Load() == 0 {
		t.Fatal("no read reached the replica")
	}
	if st.Bypasses["replica_lag"] == 0 {
		t.Fatal("no read was kept from the cache by the window: the writes did not exercise it")
	}
	// Once quiet past the window, a shape misses at most while its first
	// result is being read and stored: far fewer than half its reads.
	for i, sh := range mixedShapes {
		reads, served := tallies[i].reads.Load(), tallies[i].served.Load()
		if reads < minReads {
			t.Errorf("%s: only %d reads once quiet: the test did not run long enough", sh.name, reads)
			continue
		}
		if served*2 < reads {
			t.Errorf("%s: %d of %d reads served once the tables were quiet past the window", sh.name, served, reads)
		}
	}
}
