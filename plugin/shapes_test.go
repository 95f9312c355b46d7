package plugin_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/glebarez/sqlite"
	"github.com/gormcache/gormcache/plugin"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

func TestShapeSQL(t *testing.T) {
	for _, tc := range []struct{ dialect, in, want string }{
		{"sqlite", "SELECT * FROM `users` WHERE `users`.`id` = ? ORDER BY `users`.`id` LIMIT 1", "SELECT * FROM `users` WHERE `users`.`id` = ? ORDER BY `users`.`id` LIMIT ?"},
		{"postgres", `SELECT * FROM "users" WHERE name = 'o''brien' AND id IN ($1,$2,$3)`, `SELECT * FROM "users" WHERE name = ? AND id IN ($1, …)`},
		{"postgres", "SELECT  x\n FROM t -- secret 42\n WHERE a = 3.5e-3 /* c 7 */ AND b = E'x\\'y' AND c = $$dollar$$", "SELECT x FROM t WHERE a = ? AND b = ? AND c = ?"},
		{"mysql", `SELECT * FROM t WHERE a = "secret" AND b IN (?, ?, ?)`, "SELECT * FROM t WHERE a = ? AND b IN (?, …)"},
		{"postgres", "SELECT col1, t2.x FROM t2 WHERE y = 'unterminated", "SELECT col1, t2.x FROM t2 WHERE y = ?"},
		{"sqlite", "INSERT INTO `t` (`a`,`b`) VALUES (?,?),(?,?),(?,?) RETURNING `id`", "INSERT INTO `t` (`a`, `b`) VALUES (?, …), … RETURNING `id`"},
		{"postgres", `INSERT INTO "t" ("a") VALUES ($1),($2),($3)`, `INSERT INTO "t" ("a") VALUES ($1), …`},
	} {
		if got := plugin.ShapeSQL(tc.dialect, tc.in); got != tc.want {
			t.Errorf("ShapeSQL(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

type shapeUser struct {
	ID   uint
	Name string
}

func TestShapes(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "s.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&shapeUser{}); err != nil {
		t.Fatal(err)
	}
	p := plugin.New(plugin.Config{})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	db.Create(&[]shapeUser{{Name: "a"}, {Name: "b"}, {Name: "c"}})
	var u shapeUser
	db.First(&u, 1) // made before collecting: not counted
	if s := p.Shapes(); s.Collecting || len(s.Shapes) > 0 {
		t.Fatalf("collecting before CollectShapes: %+v", s)
	}
	if err := p.CollectShapes(0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		for id := 1; id <= 3; id++ {
			var u shapeUser
			db.First(&u, id) // 3 misses (id 1 stored before collecting: a hit), then hits
		}
	}
	db.Model(&shapeUser{ID: 2}).Update("name", "x") // a write to row 2
	var again shapeUser
	db.First(&again, 2) // its entry was invalidated: a miss
	var us []shapeUser
	db.Clauses(plugin.Skip()).Find(&us)
	db.Where("id < abs(random())").Find(&us)

	snap := p.Shapes()
	find := func(prefix string) plugin.ShapeStats {
		t.Helper()
		for _, s := range snap.Shapes {
			if strings.HasPrefix(s.SQL, prefix) && (!strings.HasSuffix(prefix, "`") || s.SQL == prefix) {
				return s
			}
		}
		t.Fatalf("no shape %q in %+v", prefix, snap.Shapes)
		return plugin.ShapeStats{}
	}
	first := find("SELECT * FROM `shape_users` WHERE `shape_users`.`id` = ?")
	if first.Hits != 7 || first.Misses != 3 || first.Stores != 3 || first.Reads() != 10 || first.Invalidated != 1 {
		t.Errorf("First: %+v (want 7 hits, 3 misses, 3 stores, 1 invalidated)", first)
	}
	if first.InvalidatedBy["shape_users rows by id"] != 1 || first.Bytes == 0 {
		t.Errorf("First: invalidated by %v, %d bytes", first.InvalidatedBy, first.Bytes)
	}
	all := find("SELECT * FROM `shape_users`")
	if all.Bypasses[plugin.ReasonSkip] != 1 || all.DBQueries() != 1 || all.Hits != 0 {
		t.Errorf("Find with Skip: %+v", all)
	}
	vol := find("SELECT * FROM `shape_users` WHERE id < abs(random())")
	if vol.Cacheable || vol.Reason != plugin.ReasonVolatile || vol.Bypasses[plugin.ReasonVolatile] != 1 || len(vol.Tables) != 1 {
		t.Errorf("volatile: %+v", vol)
	}
	upd := find("UPDATE `shape_users` SET")
	if !upd.Write || upd.Writes != 1 || upd.Tables[0] != "shape_users" {
		t.Errorf("update: %+v", upd)
	}
	if !snap.Latency.InProcess || snap.Latency.Calls != 0 {
		t.Errorf("latency of the in-process store: %+v", snap.Latency)
	}
	p.StopShapes()
	if p.Shapes().Collecting {
		t.Error("still collecting after StopShapes")
	}
}

// TestShapesBounded: more shapes than the bound keep the bound, and the
// dropped ones add up in Other.
func TestShapesBounded(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "s.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	db.AutoMigrate(&shapeUser{})
	p := plugin.New(plugin.Config{})
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.CollectShapes(5)
	cols := []string{"id", "name", "id, name", "name, id", "count(*)", "max(id)", "min(id)", "max(name)"}
	for _, c := range cols {
		var out []map[string]any
		db.Model(&shapeUser{}).Select(c).Find(&out)
	}
	snap := p.Shapes()
	if len(snap.Shapes) != 5 || snap.Dropped != 3 || snap.Other.Misses != 3 {
		t.Errorf("%d shapes, %d dropped, other %+v", len(snap.Shapes), snap.Dropped, snap.Other)
	}
}
