package keys_test

import (
	"fmt"

	"github.com/gormcache/gormcache/keys"
)

func ExampleBuilder_Key() {
	canonical, err := keys.AppendQuery(nil, "postgres", "db.internal:5432/shop?user=app",
		`SELECT * FROM "users" WHERE "users"."id" = $1 LIMIT $2`, []any{42, 1})
	if err != nil {
		panic(err)
	}
	var b keys.Builder // prefix "gc", SHA-256
	fmt.Println(b.Key(canonical))

	b.Prefix = "myapp"
	fmt.Println(b.Key(canonical))
	// Output:
	// gc:1:gndrS1L5cL6PX8TDYoAlBg
	// myapp:1:gndrS1L5cL6PX8TDYoAlBg
}

func ExampleNormalize() {
	fmt.Printf("%q\n", keys.Normalize("SELECT *\n\tFROM users\n\tWHERE name = 'a  b'  "))
	// Output:
	// "SELECT * FROM users WHERE name = 'a  b'"
}

func ExampleAppendQuery() {
	a, _ := keys.AppendQuery(nil, "mysql", "db", "SELECT ?", []any{1})
	b, _ := keys.AppendQuery(nil, "mysql", "db", "SELECT ?", []any{"1"})
	fmt.Println(string(a) == string(b))
	// Output:
	// false
}

func ExampleParseQuery() {
	canonical, err := keys.AppendQuery(nil, "postgres", "db.internal:5432/shop?user=app",
		`SELECT  *  FROM "users" WHERE "users"."id" = $1 LIMIT $2`, []any{uint8(42), 1})
	if err != nil {
		panic(err)
	}
	q, err := keys.ParseQuery(canonical)
	if err != nil {
		panic(err)
	}
	fmt.Println(q.Dialect)
	fmt.Println(q.SQL)
	fmt.Printf("%#v\n", q.Args)
	// Output:
	// postgres
	// SELECT * FROM "users" WHERE "users"."id" = $1 LIMIT $2
	// []interface {}{42, 1}
}
