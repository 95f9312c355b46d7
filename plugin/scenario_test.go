package plugin_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// outcome is what one step observed: its value, error and RowsAffected.
type outcome struct {
	V    any
	Err  string
	Rows int64
}

func result(tx *gorm.DB, v any) outcome {
	o := outcome{V: v, Rows: tx.RowsAffected}
	if tx.Error != nil {
		o.Err = tx.Error.Error()
	}
	return o
}

func errOutcome(v any, err error) outcome {
	o := outcome{V: v}
	if err != nil {
		o.Err = err.Error()
	}
	return o
}

// step is one action of the scenario. Reads are run twice on the cached
// database (miss, then hit) and compared with the plain database each time.
type step struct {
	name     string
	write    bool
	dialects []string // nil = all
	run      func(db *gorm.DB) outcome
}

func ptr[T any](v T) *T { return &v }

// clock is a deterministic NowFunc: both databases see the same timestamps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Local()}
}

func seed(db *gorm.DB) error {
	if err := db.AutoMigrate(&Company{}, &Language{}, &User{}, &Pet{}, &Toy{}, &Account{}); err != nil {
		return err
	}
	langs := []Language{{Code: "en"}, {Code: "fr"}, {Code: "de"}}
	if err := db.Create(&langs).Error; err != nil {
		return err
	}
	companies := []Company{{Name: "Acme"}, {Name: "Globex"}}
	if err := db.Create(&companies).Error; err != nil {
		return err
	}
	bday := time.Date(1990, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 3600))
	for i := 1; i <= 12; i++ {
		u := User{
			Name: fmt.Sprintf("user%02d", i), Age: 20 + i%7, Secret: "s3cret",
			Meta:   map[string]string{"k": fmt.Sprint(i)},
			Tag:    Tag{Parts: []string{"a", fmt.Sprint(i)}},
			Score:  sql.NullFloat64{Float64: float64(i) / 4, Valid: i%3 != 0},
			Active: i%2 == 0,
		}
		if i%2 == 0 {
			u.Birthday = &bday
			u.Nick = ptr(fmt.Sprintf("n%d", i))
			u.CompanyID = &companies[i%2].ID
		}
		if i <= 4 {
			u.Languages = langs[:i%3+1]
			u.Pets = []Pet{{Name: fmt.Sprintf("pet%d", i), Toys: []Toy{{Name: "ball"}, {Name: "bone"}}}}
		}
		if err := db.Create(&u).Error; err != nil {
			return err
		}
	}
	return db.Create(&[]Account{{Owner: "ann", Balance: 100}, {Owner: "bob", Balance: 50}}).Error
}

// reads are the read steps; every one runs after every write too.
var reads = []step{
	{name: "First", run: func(db *gorm.DB) outcome { var u User; return result(db.First(&u, 3), u) }},
	{name: "FirstWhere", run: func(db *gorm.DB) outcome { var u User; return result(db.Where("name = ?", "user05").First(&u), u) }},
	{name: "Take", run: func(db *gorm.DB) outcome { var u User; return result(db.Take(&u, "age > ?", 22), u) }},
	{name: "Last", run: func(db *gorm.DB) outcome { var u User; return result(db.Last(&u), u) }},
	{name: "NotFound", run: func(db *gorm.DB) outcome { var u User; return result(db.First(&u, 9999), u) }},
	{name: "FindAll", run: func(db *gorm.DB) outcome { var us []User; return result(db.Order("id").Find(&us), us) }},
	{name: "FindPtrs", run: func(db *gorm.DB) outcome {
		var us []*User
		return result(db.Where("age < ?", 24).Order("id desc").Find(&us), us)
	}},
	{name: "FindReusesSlice", run: func(db *gorm.DB) outcome {
		us := []User{{Name: "stale", Age: 1, Nick: ptr("stale")}, {Name: "stale2"}, {Name: "stale3"}}
		return result(db.Select("id", "name", "created_at").Order("id").Limit(2).Find(&us), us)
	}},
	{name: "FirstOverExisting", run: func(db *gorm.DB) outcome {
		u := User{Name: "prev", Age: 77, Nick: ptr("prev-nick"), Active: true}
		return result(db.Select("id", "name", "nick", "birthday").First(&u, 5), u)
	}},
	{name: "NarrowTypes", run: func(db *gorm.DB) outcome {
		var ns []Narrow
		return result(db.Order("id").Find(&ns), ns)
	}},
	{name: "NarrowPtrs", run: func(db *gorm.DB) outcome {
		var ns []*Narrow
		return result(db.Order("id").Limit(4).Find(&ns), ns)
	}},
	// (the failing column last: after a Scan error, GORM sets the later
	// fields from whatever its shared value pools hold)
	{name: "NarrowOverflow", run: func(db *gorm.DB) outcome {
		var ns []Narrow
		return result(db.Select("id, name, active, age * 10 AS age").Order("id").Find(&ns), ns)
	}},
	{name: "NarrowOverflowFirst", run: func(db *gorm.DB) outcome {
		var n Narrow
		return result(db.Select("id, name, active, age * 10 AS age").First(&n, 2), n)
	}},
	{name: "FindPage", run: func(db *gorm.DB) outcome {
		var us []User
		return result(db.Order("name").Limit(3).Offset(2).Find(&us), us)
	}},
	{name: "FindEmpty", run: func(db *gorm.DB) outcome { var us []User; return result(db.Where("age > ?", 1000).Find(&us), us) }},
	{name: "FindInBatches", run: func(db *gorm.DB) outcome {
		var names []string
		var batches int
		tx := db.Order("id").FindInBatches(&[]User{}, 5, func(tx *gorm.DB, batch int) error {
			batches = batch
			for _, u := range *(tx.Statement.Dest.(*[]User)) {
				names = append(names, u.Name)
			}
			return nil
		})
		return result(tx, []any{names, batches})
	}},
	{name: "Count", run: func(db *gorm.DB) outcome {
		var n int64
		return result(db.Model(&User{}).Where("age > ?", 21).Count(&n), n)
	}},
	{name: "CountDistinct", run: func(db *gorm.DB) outcome {
		var n int64
		return result(db.Model(&User{}).Distinct("age").Count(&n), n)
	}},
	{name: "PluckNames", run: func(db *gorm.DB) outcome {
		var ns []string
		return result(db.Model(&User{}).Order("id").Pluck("name", &ns), ns)
	}},
	{name: "PluckAges", run: func(db *gorm.DB) outcome {
		var as []int
		return result(db.Model(&User{}).Order("id").Pluck("age", &as), as)
	}},
	{name: "Row", run: func(db *gorm.DB) outcome {
		var name string
		var age int
		err := db.Model(&User{}).Select("name", "age").Where("id = ?", 2).Row().Scan(&name, &age)
		return errOutcome([]any{name, age}, err)
	}},
	{name: "RowNoRows", run: func(db *gorm.DB) outcome {
		var name string
		err := db.Model(&User{}).Select("name").Where("id = ?", -1).Row().Scan(&name)
		return errOutcome(name, err)
	}},
	{name: "Rows", run: func(db *gorm.DB) outcome {
		rows, err := db.Model(&User{}).Select("id", "name", "score", "nick").Order("id").Rows()
		if err != nil {
			return errOutcome(nil, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out []any
		for rows.Next() {
			var id int64
			var name string
			var score sql.NullFloat64
			var nick *string
			if err := rows.Scan(&id, &name, &score, &nick); err != nil {
				return errOutcome(out, err)
			}
			out = append(out, []any{id, name, score, nick})
		}
		return errOutcome([]any{cols, out}, rows.Err())
	}},
	{name: "RowsScanRows", run: func(db *gorm.DB) outcome {
		rows, err := db.Model(&User{}).Where("age > ?", 23).Order("id").Rows()
		if err != nil {
			return errOutcome(nil, err)
		}
		defer rows.Close()
		var us []User
		for rows.Next() {
			var u User
			if err := db.ScanRows(rows, &u); err != nil {
				return errOutcome(us, err)
			}
			us = append(us, u)
		}
		return errOutcome(us, rows.Err())
	}},
	{name: "ColumnTypes", run: func(db *gorm.DB) outcome {
		rows, err := db.Raw("SELECT id, name, age, created_at, score FROM users ORDER BY id").Rows()
		if err != nil {
			return errOutcome(nil, err)
		}
		defer rows.Close()
		cts, err := rows.ColumnTypes()
		var desc []string
		for _, ct := range cts {
			n, nok := ct.Nullable()
			l, lok := ct.Length()
			p, s, dok := ct.DecimalSize()
			desc = append(desc, fmt.Sprint(ct.Name(), ct.DatabaseTypeName(), ct.ScanType(), n, nok, l, lok, p, s, dok))
		}
		for rows.Next() {
		}
		return errOutcome(desc, err)
	}},
	{name: "RawScanStruct", run: func(db *gorm.DB) outcome {
		var us []User
		return result(db.Raw("SELECT * FROM users WHERE age >= ? AND deleted_at IS NULL ORDER BY id", 22).Scan(&us), us)
	}},
	{name: "RawFind", run: func(db *gorm.DB) outcome {
		var as []Account
		return result(db.Raw("SELECT id, owner, balance FROM accounts ORDER BY id").Find(&as), as)
	}},
	{name: "RawRow", run: func(db *gorm.DB) outcome {
		var total int64
		err := db.Raw("SELECT sum(balance) FROM accounts").Row().Scan(&total)
		return errOutcome(total, err)
	}},
	{name: "RawScalar", run: func(db *gorm.DB) outcome {
		var n int64
		return result(db.Raw("SELECT count(*) FROM users WHERE deleted_at IS NULL").Scan(&n), n)
	}},
	{name: "RawRows", run: func(db *gorm.DB) outcome {
		rows, err := db.Raw("SELECT owner, balance FROM accounts WHERE balance > ? ORDER BY owner", 0).Rows()
		if err != nil {
			return errOutcome(nil, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var o string
			var b int64
			if err := rows.Scan(&o, &b); err != nil {
				return errOutcome(out, err)
			}
			out = append(out, fmt.Sprint(o, b))
		}
		return errOutcome(out, rows.Err())
	}},
	{name: "MapFirst", run: func(db *gorm.DB) outcome {
		m := map[string]any{}
		return result(db.Model(&User{}).Select("id", "name", "age", "score", "birthday").Where("id = ?", 4).Take(&m), m)
	}},
	{name: "MapTableFirst", run: func(db *gorm.DB) outcome {
		m := map[string]any{}
		return result(db.Table("users").Select("id", "name", "active", "score", "birthday", "created_at").Where("id = ?", 4).Take(&m), m)
	}},
	{name: "MapTableFind", run: func(db *gorm.DB) outcome {
		var ms []map[string]any
		return result(db.Table("users").Select("id", "name", "active", "score", "birthday").Order("id").Limit(3).Find(&ms), ms)
	}},
	{name: "MapFind", run: func(db *gorm.DB) outcome {
		var ms []map[string]any
		return result(db.Table("accounts").Order("id").Find(&ms), ms)
	}},
	{name: "MapRawScan", run: func(db *gorm.DB) outcome {
		m := map[string]any{}
		return result(db.Raw("SELECT id, name, active, score, birthday FROM users WHERE id = ?", 4).Scan(&m), m)
	}},
	{name: "MapRawScanSlice", run: func(db *gorm.DB) outcome {
		var ms []map[string]any
		return result(db.Raw("SELECT id, name, active, score, birthday FROM users ORDER BY id").Scan(&ms), ms)
	}},
	{name: "MapTableScanSlice", run: func(db *gorm.DB) outcome {
		var ms []map[string]any
		return result(db.Table("users").Select("id", "name", "score", "birthday").Order("id").Limit(4).Scan(&ms), ms)
	}},
	{name: "MapScanRows", run: func(db *gorm.DB) outcome {
		// with the column types at every row: GORM allocates a map's
		// values from them
		rows, err := db.Raw("SELECT id, name, score, birthday FROM users WHERE id <= ? ORDER BY id", 4).Rows()
		if err != nil {
			return errOutcome(nil, err)
		}
		defer rows.Close()
		out := []any{describeColumnTypes(rows)}
		for rows.Next() {
			m := map[string]any{}
			err := db.ScanRows(rows, &m)
			out = append(out, describeColumnTypes(rows), m, fmt.Sprint(err))
		}
		return errOutcome(out, rows.Err())
	}},
	{name: "ScanScalar", run: func(db *gorm.DB) outcome {
		var n int64
		return result(db.Model(&User{}).Select("count(*)").Where("active = ?", true).Scan(&n), n)
	}},
	{name: "ScanStructSubset", run: func(db *gorm.DB) outcome {
		type row struct {
			Name string
			Age  int
		}
		var rs []row
		return result(db.Model(&User{}).Select("name, age").Order("id").Scan(&rs), rs)
	}},
	{name: "PreloadNested", run: func(db *gorm.DB) outcome {
		var us []User
		return result(db.Preload("Pets.Toys").Preload("Languages").Preload("Company").Where("id <= ?", 5).Order("id").Find(&us), us)
	}},
	{name: "PreloadConditions", run: func(db *gorm.DB) outcome {
		var us []User
		return result(db.Preload("Pets", "name <> ?", "pet2").Order("id").Limit(4).Find(&us), us)
	}},
	{name: "Joins", run: func(db *gorm.DB) outcome {
		var us []User
		return result(db.Joins("Company").Where("users.age > ?", 20).Order("users.id").Find(&us), us)
	}},
	{name: "JoinsRaw", run: func(db *gorm.DB) outcome {
		type row struct {
			Name    string
			Company string
		}
		var rs []row
		return result(db.Table("users").Select("users.name, companies.name AS company").
			Joins("JOIN companies ON companies.id = users.company_id").Order("users.id").Scan(&rs), rs)
	}},
	{name: "SubQuery", run: func(db *gorm.DB) outcome {
		var us []User
		sub := db.Model(&Pet{}).Select("user_id")
		return result(db.Where("id IN (?)", sub).Order("id").Find(&us), us)
	}},
	{name: "AssociationFind", run: func(db *gorm.DB) outcome {
		u := User{Model: gorm.Model{ID: 2}}
		var ls []Language
		err := db.Model(&u).Association("Languages").Find(&ls)
		return errOutcome(ls, err)
	}},
	{name: "AssociationCount", run: func(db *gorm.DB) outcome {
		u := User{Model: gorm.Model{ID: 3}}
		return errOutcome(db.Model(&u).Association("Languages").Count(), nil)
	}},
	{name: "FirstOrInit", run: func(db *gorm.DB) outcome {
		var u User
		return result(db.Where(User{Name: "nobody"}).Attrs(User{Age: 99}).FirstOrInit(&u), u)
	}},
	{name: "Unscoped", run: func(db *gorm.DB) outcome {
		var us []User
		return result(db.Unscoped().Order("id").Find(&us), us)
	}},
	{name: "SessionChain", run: func(db *gorm.DB) outcome {
		q := db.Session(&gorm.Session{}).Model(&User{}).Where("age > ?", 20)
		var a, b int64
		q.Where("active = ?", true).Count(&a)
		tx := q.Where("active = ?", false).Count(&b)
		return result(tx, []int64{a, b})
	}},
	{name: "WithContext", run: func(db *gorm.DB) outcome {
		var u User
		return result(db.WithContext(context.Background()).First(&u, 6), u)
	}},
	{name: "PrepareStmtSession", run: func(db *gorm.DB) outcome {
		var u User
		return result(db.Session(&gorm.Session{PrepareStmt: true}).First(&u, 7), u)
	}},
	{name: "HookError", run: func(db *gorm.DB) outcome {
		var us []User
		return result(db.Where("name = ?", "hook-error").Find(&us), us)
	}},
	{name: "QueryError", run: func(db *gorm.DB) outcome {
		var us []User
		tx := db.Where("no_such_column = ?", 1).Find(&us)
		return outcome{V: us, Rows: tx.RowsAffected, Err: fmt.Sprint(tx.Error != nil)}
	}},
	{name: "DryRun", run: func(db *gorm.DB) outcome {
		var u User
		stmt := db.Session(&gorm.Session{DryRun: true}).First(&u, 5).Statement
		sql := db.ToSQL(func(tx *gorm.DB) *gorm.DB { return tx.Model(&User{}).Where("id = ?", 1).Find(&[]User{}) })
		return outcome{V: []any{stmt.SQL.String(), len(stmt.Vars), sql, u}}
	}},
	{name: "GenericsAPI", run: func(db *gorm.DB) outcome {
		us, err := gorm.G[User](db).Where("age > ?", 22).Order("id").Find(context.Background())
		return errOutcome(us, err)
	}},
}

// writes change data; after each, every read is compared again.
var writes = []step{
	{name: "Create", write: true, run: func(db *gorm.DB) outcome {
		u := User{Name: "new1", Age: 30, Tag: Tag{Parts: []string{"n"}}}
		return result(db.Create(&u), u.ID)
	}},
	{name: "CreateInBatches", write: true, run: func(db *gorm.DB) outcome {
		us := []User{{Name: "b1", Age: 22}, {Name: "b2", Age: 23}, {Name: "b3", Age: 24}}
		return result(db.CreateInBatches(&us, 2), len(us))
	}},
	{name: "Save", write: true, run: func(db *gorm.DB) outcome {
		var u User
		db.Session(&gorm.Session{}).First(&u, 3)
		u.Age = 77
		return result(db.Save(&u), u.Age)
	}},
	{name: "Update", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Model(&User{Model: gorm.Model{ID: 5}}).Update("name", "renamed5"), nil)
	}},
	{name: "Updates", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Model(&User{}).Where("age < ?", 23).Updates(map[string]any{"active": true, "age": gorm.Expr("age + 1")}), nil)
	}},
	{name: "UpdateColumn", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Model(&User{Model: gorm.Model{ID: 6}}).UpdateColumn("age", 55), nil)
	}},
	{name: "UpdateNoRows", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Model(&User{}).Where("id = ?", -5).Update("age", 1), nil)
	}},
	{name: "SoftDelete", write: true, run: func(db *gorm.DB) outcome { return result(db.Delete(&User{}, 2), nil) }},
	{name: "UnscopedDelete", write: true, run: func(db *gorm.DB) outcome { return result(db.Unscoped().Delete(&User{}, 4), nil) }},
	{name: "Upsert", write: true, run: func(db *gorm.DB) outcome {
		l := []Language{{Code: "en"}, {Code: "es"}}
		return result(db.Clauses(clause.OnConflict{DoNothing: true}).Create(&l), nil)
	}},
	{name: "AssociationAppend", write: true, run: func(db *gorm.DB) outcome {
		var l Language
		db.Where("code = ?", "de").First(&l)
		return errOutcome(nil, db.Model(&User{Model: gorm.Model{ID: 3}}).Association("Languages").Append(&l))
	}},
	{name: "AssociationReplace", write: true, run: func(db *gorm.DB) outcome {
		var l Language
		db.Where("code = ?", "fr").First(&l)
		return errOutcome(nil, db.Model(&User{Model: gorm.Model{ID: 1}}).Association("Languages").Replace(&l))
	}},
	{name: "AssociationDelete", write: true, run: func(db *gorm.DB) outcome {
		var l Language
		db.Where("code = ?", "de").First(&l)
		return errOutcome(nil, db.Model(&User{Model: gorm.Model{ID: 3}}).Association("Languages").Delete(&l))
	}},
	{name: "AssociationClear", write: true, run: func(db *gorm.DB) outcome {
		return errOutcome(nil, db.Model(&User{Model: gorm.Model{ID: 2}}).Association("Languages").Clear())
	}},
	{name: "PetToyCreate", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Create(&Toy{PetID: 1, Name: "rope"}), nil)
	}},
	{name: "ExecRaw", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Exec("UPDATE accounts SET balance = balance + ? WHERE owner = ?", 10, "ann"), nil)
	}},
	{name: "ExecCompanyRename", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Exec("UPDATE companies SET name = ? WHERE id = ?", "Acme2", 1), nil)
	}},
	{name: "RawUpdateReturning", write: true, dialects: []string{"postgres", "sqlite"}, run: func(db *gorm.DB) outcome {
		var bal []int64
		tx := db.Raw("UPDATE accounts SET balance = balance * 2 WHERE owner = ? RETURNING balance", "bob").Scan(&bal)
		return result(tx, bal)
	}},
	{name: "Transaction", write: true, run: func(db *gorm.DB) outcome {
		err := db.Transaction(func(tx *gorm.DB) error {
			var u User
			if err := tx.First(&u, 7).Error; err != nil {
				return err
			}
			if err := tx.Model(&u).Update("age", u.Age+100).Error; err != nil {
				return err
			}
			// nested: rolled back to its savepoint
			_ = tx.Transaction(func(tx2 *gorm.DB) error {
				tx2.Model(&User{}).Where("id = ?", 8).Update("name", "never")
				return fmt.Errorf("roll back the savepoint")
			})
			// nested: kept
			return tx.Transaction(func(tx2 *gorm.DB) error {
				return tx2.Model(&User{}).Where("id = ?", 9).Update("name", "nested9").Error
			})
		})
		return errOutcome(nil, err)
	}},
	{name: "TransactionRollback", write: true, run: func(db *gorm.DB) outcome {
		tx := db.Begin()
		tx.Model(&User{}).Where("id = ?", 10).Update("name", "rolledback")
		var u User
		tx.First(&u, 10) // read inside the transaction sees its own write
		tx.Rollback()
		return outcome{V: u.Name}
	}},
	{name: "FirstOrCreate", write: true, run: func(db *gorm.DB) outcome {
		var u User
		return result(db.Where(User{Name: "foc"}).Attrs(User{Age: 41}).FirstOrCreate(&u), u.Name)
	}},
	{name: "DeleteWhere", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Where("balance < ?", 0).Delete(&Account{}), nil)
	}},
	{name: "CreateAccount", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Create(&Account{Owner: "cy", Balance: 7}), nil)
	}},
	{name: "DeleteAllAccounts", write: true, run: func(db *gorm.DB) outcome {
		return result(db.Exec("DELETE FROM accounts WHERE owner = ?", "cy"), nil)
	}},
}

func applies(s step, dialect string) bool {
	if s.dialects == nil {
		return true
	}
	i := sort.SearchStrings(s.dialects, dialect)
	return i < len(s.dialects) && s.dialects[i] == dialect
}

// same compares two outcomes; on a difference it says where.
func same(a, b outcome) (bool, string) {
	// errors name the test database, which differs between the two
	a.Err = dbName.ReplaceAllString(a.Err, "gctest_X")
	b.Err = dbName.ReplaceAllString(b.Err, "gctest_X")
	if reflect.DeepEqual(a, b) {
		return true, ""
	}
	return false, fmt.Sprintf("\nplain:  %+v\ncached: %+v", a, b)
}

var dbName = regexp.MustCompile(`gctest_[0-9a-f]+`)
