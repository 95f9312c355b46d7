package invalidation

import "testing"

// FuzzClassify checks that Classify never panics, is deterministic, returns
// sorted, unique lists and never writes a table it does not list.
func FuzzClassify(f *testing.F) {
	_, cases := readGolden(f)
	for _, c := range cases {
		f.Add(uint8(c.dialect), c.sql)
	}
	f.Fuzz(func(t *testing.T, d uint8, sql string) {
		checkInvariants(t, Dialect(d%4), sql)
		if TableName(sql) != TableName(sql) {
			t.Fatal("TableName not deterministic")
		}
	})
}

const benchSQL = `SELECT * FROM "users" WHERE "users"."id" = $1 AND "users"."deleted_at" IS NULL ORDER BY "users"."id" LIMIT $2`

func BenchmarkClassify(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchSQL)))
	for b.Loop() {
		Classify(Postgres, benchSQL)
	}
}

func BenchmarkClassifyJoin(b *testing.B) {
	const q = "SELECT `users`.`id`,`users`.`name`,`Company`.`id` AS `Company__id` FROM `users` LEFT JOIN `companies` `Company` ON `users`.`company_id` = `Company`.`id` WHERE `users`.`deleted_at` IS NULL AND `users`.`age` > ? ORDER BY `users`.`id` LIMIT ?"
	b.ReportAllocs()
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		Classify(MySQL, q)
	}
}
