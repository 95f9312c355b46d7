package plugin_test

import (
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/gormcache/gormcache/internal/testdb"
	"github.com/gormcache/gormcache/internal/testsupport"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// flagsDDL creates and fills the table of the map tests. On SQLite the
// column types are declarations only: rows 3 and 4 store other storage
// classes than their columns' (text in INTEGER, an integer in DATETIME, an
// unparseable DATETIME), which the driver reports per row in ColumnTypes.
var flagsDDL = map[string][]string{
	"sqlite": {
		`CREATE TABLE flags (id INTEGER PRIMARY KEY, on_ BOOLEAN, at DATETIME, n INTEGER, r REAL, t TEXT, b BLOB)`,
		`INSERT INTO flags VALUES (1, 1, '2026-01-02 03:04:05', 7, 1.5, 'x', x'00ff')`,
		`INSERT INTO flags VALUES (2, 0, 'not a time', NULL, NULL, NULL, NULL)`,
		`INSERT INTO flags VALUES (3, NULL, NULL, 'abc', 2, 5, 3)`,
		`INSERT INTO flags VALUES (4, 'yes', 1700000000, 2.5, 'zz', x'01', 's')`,
	},
	"postgres": {
		`CREATE TABLE flags (id bigint PRIMARY KEY, on_ boolean, at timestamp, n bigint, r double precision, t text, b bytea)`,
		`INSERT INTO flags VALUES (1, true, '2026-01-02 03:04:05', 7, 1.5, 'x', '\x00ff')`,
		`INSERT INTO flags VALUES (2, false, NULL, NULL, NULL, NULL, NULL)`,
		`INSERT INTO flags VALUES (3, NULL, '1999-12-31 23:59:59.5', -3, 2, '5', '')`,
		`INSERT INTO flags VALUES (4, true, NULL, 0, -0.25, '', NULL)`,
	},
	"mysql": {
		`CREATE TABLE flags (id bigint PRIMARY KEY, on_ boolean, at datetime(3), n bigint, r double, t text, b blob)`,
		`INSERT INTO flags VALUES (1, true, '2026-01-02 03:04:05', 7, 1.5, 'x', x'00ff')`,
		`INSERT INTO flags VALUES (2, false, NULL, NULL, NULL, NULL, NULL)`,
		`INSERT INTO flags VALUES (3, NULL, '1999-12-31 23:59:59.5', -3, 2, '5', '')`,
		`INSERT INTO flags VALUES (4, true, NULL, 0, -0.25, '', NULL)`,
	},
}

// describeMap renders a map with each value's dynamic type, so that true and
// 1, or a time and its string, differ.
func describeMap(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%T(%v) ", k, m[k], m[k])
	}
	return b.String()
}

func describeMaps(ms []map[string]any) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = describeMap(m)
	}
	return out
}

// describeColumnTypes renders what rows.ColumnTypes reports at this point.
func describeColumnTypes(rows *sql.Rows) string {
	cts, err := rows.ColumnTypes()
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, ct := range cts {
		l, okl := ct.Length()
		p, s, okd := ct.DecimalSize()
		n, okn := ct.Nullable()
		fmt.Fprintf(&b, "%s:%s:%v:%d/%v:%d,%d/%v:%v/%v ", ct.Name(), ct.DatabaseTypeName(), ct.ScanType(), l, okl, p, s, okd, n, okn)
	}
	return b.String()
}

// flagRow is a struct destination over flags that takes any value (a
// NullString converts every driver value).
type flagRow struct {
	ID             int64
	At, N, R, T, B sql.NullString
	On             sql.NullString `gorm:"column:on_"`
}

// mapReads are the map-destination shapes of GORM, each on the whole table
// and on every row alone (a one-row result of each row's storage classes).
func mapReads() []step {
	var steps []step
	for _, where := range []string{"1 = 1", "id = 1", "id = 2", "id = 3", "id = 4"} {
		sel := "SELECT id, on_, at, n, r, t, b FROM flags WHERE " + where + " ORDER BY id"
		steps = append(steps,
			// First a struct destination, whose miss takes the fast path's
			// capture: the map reads of the same SQL below hit its entry.
			step{name: "FindStructs/" + where, run: func(db *gorm.DB) outcome {
				var rs []flagRow
				tx := db.Table("flags").Where(where).Order("id").Find(&rs)
				out := make([]string, len(rs))
				for i, r := range rs {
					out[i] = fmt.Sprintf("%v %v %v %v %v %v %v", r.ID, r.On, r.At, r.N, r.R, r.T, r.B)
				}
				return result(tx, out)
			}},
			step{name: "TakeMap/" + where, run: func(db *gorm.DB) outcome {
				m := map[string]any{}
				return result(db.Table("flags").Where(where).Order("id").Take(&m), describeMap(m))
			}},
			step{name: "FirstMap/" + where, run: func(db *gorm.DB) outcome {
				m := map[string]any{}
				return result(db.Table("flags").Where(where).Order("id").First(&m), describeMap(m))
			}},
			step{name: "FindMap/" + where, run: func(db *gorm.DB) outcome {
				m := map[string]any{}
				return result(db.Table("flags").Where(where).Order("id").Find(&m), describeMap(m))
			}},
			step{name: "FindMaps/" + where, run: func(db *gorm.DB) outcome {
				var ms []map[string]any
				return result(db.Table("flags").Where(where).Order("id").Find(&ms), describeMaps(ms))
			}},
			step{name: "RawScanMap/" + where, run: func(db *gorm.DB) outcome {
				m := map[string]any{}
				return result(db.Raw(sel).Scan(&m), describeMap(m))
			}},
			step{name: "RawScanMaps/" + where, run: func(db *gorm.DB) outcome {
				var ms []map[string]any
				return result(db.Raw(sel).Scan(&ms), describeMaps(ms))
			}},
			step{name: "TableScanMaps/" + where, run: func(db *gorm.DB) outcome {
				var ms []map[string]any
				return result(db.Table("flags").Where(where).Order("id").Scan(&ms), describeMaps(ms))
			}},
			step{name: "ScanRowsMap/" + where, run: func(db *gorm.DB) outcome {
				rows, err := db.Raw(sel).Rows()
				if err != nil {
					return errOutcome(nil, err)
				}
				defer rows.Close()
				seen := []string{"before Next: " + describeColumnTypes(rows)}
				var errs []string
				for rows.Next() {
					seen = append(seen, describeColumnTypes(rows))
					m := map[string]any{}
					if err := db.ScanRows(rows, &m); err != nil {
						errs = append(errs, err.Error())
					}
					seen = append(seen, describeMap(m))
				}
				if err := rows.Err(); err != nil {
					errs = append(errs, err.Error())
				}
				return outcome{V: seen, Err: strings.Join(errs, "; ")}
			}},
		)
	}
	return steps
}

// TestMapDestinations compares plain GORM and the cache (miss, then hit) on
// every map-destination shape, with values and errors as plain GORM gives
// them: on SQLite a map's value types follow the column types the driver
// reports for the current row (a BOOLEAN's true, a DATETIME's time or its
// scan error).
func TestMapDestinations(t *testing.T) {
	t.Parallel()
	for _, dialect := range testdb.Dialects {
		for _, encoded := range []bool{false, true} {
			name := dialect
			if encoded {
				name += "/EncodedEntries"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				open := func(cached bool) *gorm.DB {
					db := testdb.Open(t, dialect, &gorm.Config{Logger: logger.Discard})
					for _, q := range flagsDDL[dialect] {
						if err := db.Exec(q).Error; err != nil {
							t.Fatalf("%s: %v", q, err)
						}
					}
					if cached {
						pc := plugin.Config{}
						if encoded {
							pc.Store = testsupport.NewRecordingStore()
						}
						p := plugin.New(pc)
						if err := db.Use(p); err != nil {
							t.Fatalf("Use: %v", err)
						}
						t.Cleanup(func() { p.Close() })
					}
					return db
				}
				plain, cached := open(false), open(true)
				for _, r := range mapReads() {
					want := r.run(plain)
					for i := range 2 {
						got := r.run(cached)
						if ok, diff := same(want, got); !ok {
							t.Errorf("%s (run %d): differs%s", r.name, i+1, diff)
						}
					}
				}
			})
		}
	}
}
