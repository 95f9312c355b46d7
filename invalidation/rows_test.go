package invalidation

import (
	"reflect"
	"testing"
)

func arg(i int) Operand                  { return Operand{Kind: OperandArg, Arg: i} }
func num(s string) Operand               { return Operand{Kind: OperandNumber, Text: s} }
func str(s string) Operand               { return Operand{Kind: OperandString, Text: s} }
func null() Operand                      { return Operand{Kind: OperandNull} }
func cj(c string, v ...Operand) Conjunct { return Conjunct{Column: c, Values: v} }

func TestRowShape(t *testing.T) {
	for _, c := range []struct {
		d    Dialect
		sql  string
		want Shape
	}{
		// GORM's First, Find by ids, belongs-to preload, soft delete.
		{Postgres, `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`,
			Shape{OK: true, Op: ShapeSelect, Table: "users", Where: []Conjunct{cj("id", arg(0)), cj("deleted_at", null())}}},
		{MySQL, "SELECT * FROM `users` WHERE `users`.`id` IN (?,?,?)",
			Shape{OK: true, Op: ShapeSelect, Table: "users", Where: []Conjunct{cj("id", arg(0), arg(1), arg(2))}}},
		{SQLite, `SELECT * FROM users u WHERE 7 = u.id`,
			Shape{OK: true, Op: ShapeSelect, Table: "users", Where: []Conjunct{cj("id", num("7"))}}},
		{SQLite, `SELECT id FROM users WHERE (id = -3) AND name = 'x' AND age BETWEEN 1 AND 5`,
			Shape{OK: true, Op: ShapeSelect, Table: "users", Where: []Conjunct{cj("id", num("-3")), cj("name", str("x"))}}},
		{Postgres, `SELECT * FROM users WHERE id = $2 AND name = $1`,
			Shape{OK: true, Op: ShapeSelect, Table: "users", Where: []Conjunct{cj("id", arg(1)), cj("name", arg(0))}}},
		// Not conjunctions of bound columns: no Where, still one table.
		{Postgres, `SELECT * FROM users WHERE id = 1 OR id = 2`, Shape{OK: true, Op: ShapeSelect, Table: "users"}},
		{Postgres, `SELECT * FROM users WHERE id > 1`, Shape{OK: true, Op: ShapeSelect, Table: "users"}},
		{MySQL, `SELECT * FROM users WHERE id = 1 || name = 'x' AND id = 2`, Shape{OK: true, Op: ShapeSelect, Table: "users"}},
		{MySQL, `SELECT * FROM users WHERE "id" = 0 AND name = 'x'`, Shape{OK: true, Op: ShapeSelect, Table: "users", Where: []Conjunct{cj("name", str("x"))}}},
		{Postgres, `SELECT * FROM users WHERE CASE WHEN a = 0 AND id = 1 AND b = 0 THEN 0 ELSE 1 END = 1 AND id = 2`, Shape{OK: true, Op: ShapeSelect, Table: "users"}},
		{Postgres, `SELECT * FROM users WHERE id = $1::int`, Shape{OK: true, Op: ShapeSelect, Table: "users"}},
		{Postgres, `SELECT * FROM users WHERE lower(name) = 'a'`, Shape{OK: true, Op: ShapeSelect, Table: "users"}},
		{Postgres, `SELECT * FROM users WHERE other.id = 1`, Shape{OK: true, Op: ShapeSelect, Table: "users"}},
		{Postgres, `SELECT * FROM users`, Shape{OK: true, Op: ShapeSelect, Table: "users"}},
		// Not the shape at all.
		{Postgres, `SELECT * FROM users JOIN posts ON posts.user_id = users.id WHERE users.id = 1`, Shape{}},
		{Postgres, `SELECT * FROM users, posts WHERE users.id = 1`, Shape{}},
		{Postgres, `SELECT * FROM users WHERE id = 1 AND id IN (SELECT user_id FROM posts)`, Shape{}},
		{Postgres, `SELECT * FROM users WHERE id = 1 UNION SELECT * FROM users WHERE id = 2`, Shape{}},
		{Postgres, `SELECT name FROM users WHERE id = 1 GROUP BY name`, Shape{}},
		{Postgres, `WITH x AS (SELECT 1) SELECT * FROM users WHERE id = 1`, Shape{}},
		{Postgres, `SELECT * FROM users WHERE id = 1; SELECT 1`, Shape{}},
		{Postgres, `SELECT * FROM users WHERE id = $1 AND name = ?`, Shape{}},
		{MySQL, `SELECT * FROM users WHERE id = :id`, Shape{}},
		{SQLite, `SELECT * FROM users WHERE balance = $2 AND id = $1`, Shape{}},
		// Writes.
		{Postgres, `UPDATE "users" SET "visits"=$1,"updated_at"=$2 WHERE "users"."deleted_at" IS NULL AND "id" = $3`,
			Shape{OK: true, Op: ShapeUpdate, Table: "users", Set: []string{"visits", "updated_at"}, SetValues: []Operand{arg(0), arg(1)}, Where: []Conjunct{cj("deleted_at", null()), cj("id", arg(2))}}},
		{MySQL, "UPDATE `posts` SET `deleted_at`=? WHERE `posts`.`id` = ? AND `posts`.`deleted_at` IS NULL",
			Shape{OK: true, Op: ShapeUpdate, Table: "posts", Set: []string{"deleted_at"}, SetValues: []Operand{arg(0)}, Where: []Conjunct{cj("id", arg(1)), cj("deleted_at", null())}}},
		{Postgres, `UPDATE users SET id = id + 1 WHERE id = 5 RETURNING id`,
			Shape{OK: true, Op: ShapeUpdate, Table: "users", Set: []string{"id"}, SetValues: []Operand{{}}, Where: []Conjunct{cj("id", num("5"))}}},
		// MySQL's IGNORE may store another value than the one given (an
		// out-of-range value clipped, NULL as 0); SQLite's OR IGNORE does not.
		{MySQL, "UPDATE IGNORE posts SET grp = 300 WHERE grp = 1",
			Shape{OK: true, Op: ShapeUpdate, Table: "posts", Set: []string{"grp"}, SetValues: []Operand{{}}, Where: []Conjunct{cj("grp", num("1"))}}},
		{MySQL, "INSERT IGNORE INTO posts (id, grp) VALUES (1, 300)",
			Shape{OK: true, Op: ShapeInsert, Table: "posts", Columns: []string{"id", "grp"}, Values: [][]Operand{{{}, {}}}}},
		{SQLite, "INSERT OR IGNORE INTO posts (id, grp) VALUES (1, 300)",
			Shape{OK: true, Op: ShapeInsert, Table: "posts", Columns: []string{"id", "grp"}, Values: [][]Operand{{num("1"), num("300")}}}},
		{Postgres, `UPDATE users SET (a, b) = (1, 2) WHERE id = 5`,
			Shape{OK: true, Op: ShapeUpdate, Table: "users", SetAll: true, Where: []Conjunct{cj("id", num("5"))}}},
		{Postgres, `UPDATE users SET name = (SELECT name FROM others LIMIT 1) WHERE id = $1`,
			Shape{OK: true, Op: ShapeUpdate, Table: "users", Set: []string{"name"}, SetValues: []Operand{{}}, Where: []Conjunct{cj("id", arg(0))}}},
		{MySQL, "UPDATE books SET shelf_id = 3, title = ?, `n` = NULL, m = -2, o = DEFAULT WHERE shelf_id IN (2, ?)",
			Shape{OK: true, Op: ShapeUpdate, Table: "books", Set: []string{"shelf_id", "title", "n", "m", "o"},
				SetValues: []Operand{num("3"), arg(0), null(), num("-2"), {}}, Where: []Conjunct{cj("shelf_id", num("2"), arg(1))}}},
		{Postgres, `UPDATE users SET name = 'x' FROM posts WHERE posts.user_id = users.id`, Shape{}},
		{MySQL, "UPDATE users u JOIN posts p ON p.user_id = u.id SET u.name = 'x' WHERE u.id = 1", Shape{}},
		{SQLite, `UPDATE OR REPLACE users SET email = 'x' WHERE id = 5`, Shape{}},
		{Postgres, `DELETE FROM "posts" WHERE "posts"."id" = $1`,
			Shape{OK: true, Op: ShapeDelete, Table: "posts", Where: []Conjunct{cj("id", arg(0))}}},
		{Postgres, `DELETE FROM posts`, Shape{OK: true, Op: ShapeDelete, Table: "posts"}},
		{Postgres, `DELETE FROM posts USING users WHERE posts.user_id = users.id`, Shape{}},
		{Postgres, `INSERT INTO "posts" ("user_id","title") VALUES ($1,$2),($3,$4) RETURNING "id"`,
			Shape{OK: true, Op: ShapeInsert, Table: "posts", Columns: []string{"user_id", "title"}, Values: [][]Operand{{arg(0), arg(1)}, {arg(2), arg(3)}}}},
		{MySQL, "INSERT INTO `posts` (`id`,`title`) VALUES (7,DEFAULT) ON DUPLICATE KEY UPDATE `title`=VALUES(`title`)",
			Shape{OK: true, Op: ShapeInsert, Table: "posts", Columns: []string{"id", "title"}, Values: [][]Operand{{num("7"), {}}}, Upsert: true}},
		{SQLite, `INSERT OR REPLACE INTO posts (id) VALUES (1)`,
			Shape{OK: true, Op: ShapeInsert, Table: "posts", Columns: []string{"id"}, Values: [][]Operand{{num("1")}}, Upsert: true}},
		{Postgres, `INSERT INTO posts (id) SELECT id FROM others`, Shape{}},
		{Postgres, `INSERT INTO posts (id, title) VALUES (1)`, Shape{}},
	} {
		got := RowShape(c.d, c.sql)
		got.Tail = 0                                                                                                           // (TestRowShapeTail)
		got.Filtered, got.WhereAll, got.CountAll, got.Plain, got.Order, got.Limit = false, false, false, false, nil, Operand{} // (TestRowShapeOrder, TestRowShapeCount)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s\n got %+v\nwant %+v", c.sql, got, c.want)
		}
	}
}

// Tail is where a RETURNING clause may be inserted: after the last clause
// of an UPDATE or DELETE that has no ORDER BY, LIMIT or RETURNING.
func TestRowShapeTail(t *testing.T) {
	for _, c := range []struct {
		d    Dialect
		sql  string
		tail string // the statement's text up to Tail ("": Tail is 0)
	}{
		{Postgres, `UPDATE "posts" SET "title"=$1 WHERE "posts"."id" = $2`, `UPDATE "posts" SET "title"=$1 WHERE "posts"."id" = $2`},
		{Postgres, "UPDATE posts SET title = 'a' WHERE id = 1 ; -- done\n", "UPDATE posts SET title = 'a' WHERE id = 1"},
		{SQLite, "DELETE FROM `posts` WHERE `posts`.`id` IN (?,?) /* x */", "DELETE FROM `posts` WHERE `posts`.`id` IN (?,?)"},
		{Postgres, `DELETE FROM posts`, `DELETE FROM posts`},
		{Postgres, `UPDATE posts SET title = 'a'`, `UPDATE posts SET title = 'a'`},
		{Postgres, `UPDATE posts SET title = 'a' WHERE id = 1 RETURNING id`, ""},
		{SQLite, `UPDATE posts SET title = 'a' WHERE id = 1 ORDER BY id LIMIT 1`, ""},
		{Postgres, `DELETE FROM posts WHERE id = 1 RETURNING *`, ""},
		{MySQL, `DELETE FROM posts WHERE id = 1 LIMIT 1`, ""},
		{Postgres, `INSERT INTO posts (id) VALUES (1)`, ""},
		{Postgres, `SELECT * FROM posts WHERE id = 1`, ""},
	} {
		got := RowShape(c.d, c.sql)
		if !got.OK {
			t.Fatalf("%s: not OK", c.sql)
		}
		if got.Tail == 0 && c.tail != "" || got.Tail != 0 && c.sql[:got.Tail] != c.tail {
			t.Errorf("%s: Tail %d, want the text %q", c.sql, got.Tail, c.tail)
		}
	}
}

func FuzzRowShape(f *testing.F) {
	f.Add(`SELECT * FROM users WHERE id = $1 AND (a = 1 OR b IN (1,2)) AND c BETWEEN 1 AND 2`)
	f.Add(`UPDATE t SET a = ?, b = (1 WHERE id IN (?, 'x'`)
	f.Add(`INSERT INTO t (a) VALUES (1), (`)
	f.Fuzz(func(t *testing.T, sql string) {
		for _, d := range []Dialect{Generic, Postgres, MySQL, SQLite} {
			s := RowShape(d, sql)
			if !s.OK && (s.Where != nil || s.Values != nil) {
				t.Fatalf("not OK but with rows: %+v", s)
			}
		}
	})
}

// Order and Limit: a SELECT that ends with ORDER BY columns and LIMIT n.
func TestRowShapeOrder(t *testing.T) {
	type want struct {
		filtered bool
		order    []OrderTerm
		limit    Operand
	}
	desc := func(c string) OrderTerm { return OrderTerm{Column: c, Desc: true} }
	asc := func(c string) OrderTerm { return OrderTerm{Column: c} }
	for _, c := range []struct {
		d   Dialect
		sql string
		want
	}{
		{Postgres, `SELECT * FROM "users" ORDER BY visits desc, id LIMIT 10`, want{false, []OrderTerm{desc("visits"), asc("id")}, num("10")}},
		{Postgres, `SELECT * FROM "users" ORDER BY "users"."visits" DESC NULLS LAST LIMIT 3`, want{false, []OrderTerm{desc("visits")}, num("3")}},
		{MySQL, "SELECT * FROM `users` u ORDER BY u.`score` ASC,`id` DESC LIMIT 5", want{false, []OrderTerm{asc("score"), desc("id")}, num("5")}},
		{SQLite, `SELECT * FROM users WHERE deleted_at IS NULL ORDER BY id LIMIT 2`, want{true, []OrderTerm{asc("id")}, num("2")}},
		{Postgres, `SELECT * FROM users WHERE id > 3`, want{true, nil, Operand{}}},
		// Not this shape: no limit, a parameter, an offset, an expression,
		// a position, a collation, locking, another table's column.
		{Postgres, `SELECT * FROM users ORDER BY visits DESC`, want{}},
		{Postgres, `SELECT * FROM users WHERE id > $1 ORDER BY visits DESC LIMIT $2`, want{true, []OrderTerm{desc("visits")}, arg(1)}},
		{Postgres, `SELECT * FROM users ORDER BY visits DESC LIMIT -1`, want{}},
		{Postgres, `SELECT * FROM users ORDER BY visits DESC LIMIT 10 OFFSET 10`, want{}},
		{MySQL, `SELECT * FROM users ORDER BY visits DESC LIMIT 10, 10`, want{}},
		{Postgres, `SELECT * FROM users ORDER BY visits + 1 DESC LIMIT 10`, want{}},
		{Postgres, `SELECT * FROM users ORDER BY 2 DESC LIMIT 10`, want{}},
		{Postgres, `SELECT * FROM users ORDER BY name COLLATE "C" LIMIT 10`, want{}},
		{Postgres, `SELECT * FROM users ORDER BY visits LIMIT 10 FOR UPDATE`, want{}},
		{Postgres, `SELECT * FROM users ORDER BY other.visits LIMIT 10`, want{}},
		{Postgres, `SELECT * FROM users LIMIT 10`, want{}},
	} {
		got := RowShape(c.d, c.sql)
		if !got.OK || got.Filtered != c.filtered || !reflect.DeepEqual(got.Order, c.order) || !reflect.DeepEqual(got.Limit, c.limit) {
			t.Errorf("%s\n got filtered=%v order=%+v limit=%+v (ok %v)\nwant %+v", c.sql, got.Filtered, got.Order, got.Limit, got.OK, c.want)
		}
	}
}

// WhereAll: every top-level conjunct binds a column; CountAll: the list
// is count(*) or count(1).
func TestRowShapeCount(t *testing.T) {
	for _, c := range []struct {
		d               Dialect
		sql             string
		whereAll, count bool
	}{
		{Postgres, `SELECT count(*) FROM "posts" WHERE user_id = $1 AND "posts"."deleted_at" IS NULL`, true, true},
		{MySQL, "SELECT COUNT(1) FROM `posts` WHERE `posts`.`user_id` IN (?,?)", true, true},
		{SQLite, `SELECT count(*) FROM posts WHERE user_id = ? AND title LIKE 'a%'`, false, true},
		{Postgres, `SELECT count(*) FROM posts WHERE user_id = 1 OR user_id = 2`, false, true},
		{Postgres, `SELECT count(id) FROM posts WHERE user_id = 1`, true, false},
		{Postgres, `SELECT count(*), max(id) FROM posts WHERE user_id = 1`, true, false},
		{Postgres, `SELECT * FROM posts WHERE user_id = 1`, true, false},
		{Postgres, `SELECT count(*) FROM posts`, false, true},
	} {
		got := RowShape(c.d, c.sql)
		if !got.OK || got.WhereAll != c.whereAll || got.CountAll != c.count {
			t.Errorf("%s: ok %v, WhereAll %v, CountAll %v; want %v, %v", c.sql, got.OK, got.WhereAll, got.CountAll, c.whereAll, c.count)
		}
	}
}

// Plain: the select list is the table's columns, by name.
func TestRowShapePlain(t *testing.T) {
	for _, c := range []struct {
		d     Dialect
		sql   string
		plain bool
	}{
		{Postgres, `SELECT * FROM "users" ORDER BY visits DESC LIMIT 3`, true},
		{Postgres, `SELECT "users"."id", "users"."visits", name FROM "users"`, true},
		{MySQL, "SELECT u.*, u.`id` FROM `users` u", true},
		{Postgres, `SELECT users.* FROM users`, true},
		{Postgres, `SELECT id, bonus AS visits FROM users`, false},
		{Postgres, `SELECT id, bonus visits FROM users`, false},
		{Postgres, `SELECT id, -visits AS visits FROM users`, false},
		{Postgres, `SELECT other.* FROM users`, false},
		{Postgres, `SELECT DISTINCT id FROM users`, false},
		{Postgres, `SELECT count(*) FROM users`, false},
	} {
		if got := RowShape(c.d, c.sql); !got.OK || got.Plain != c.plain {
			t.Errorf("%s: ok %v, Plain %v; want %v", c.sql, got.OK, got.Plain, c.plain)
		}
	}
	// A column assigned twice: which value wins is the database's.
	if sh := RowShape(SQLite, `UPDATE t SET a = 1, a = 2 WHERE id = 3`); !sh.OK || !sh.SetAll {
		t.Errorf("a column assigned twice: %+v", sh)
	}
}
