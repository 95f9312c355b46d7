package invalidation

// Dialect selects the lexical and grammatical rules of one SQL dialect.
type Dialect uint8

const (
	// Generic is an unknown dialect: the union of the rules below is accepted,
	// choosing, where they conflict, the reading that finds more tables.
	Generic Dialect = iota
	// Postgres is PostgreSQL.
	Postgres
	// MySQL is MySQL and MariaDB.
	MySQL
	// SQLite is SQLite.
	SQLite
)

// DialectOf maps a gorm Dialector.Name() to a Dialect: "postgres" (and
// "postgresql", "pgx"), "mysql" (and "mariadb"), "sqlite" and "sqlite3" are
// known; anything else is Generic.
func DialectOf(name string) Dialect {
	switch name {
	case "postgres", "postgresql", "pgx":
		return Postgres
	case "mysql", "mariadb":
		return MySQL
	case "sqlite", "sqlite3":
		return SQLite
	}
	return Generic
}

// String returns the dialect's name as DialectOf accepts it ("generic" for Generic).
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	case SQLite:
		return "sqlite"
	}
	return "generic"
}

// Kind is what a statement does to table data.
type Kind uint8

const (
	// Unknown: not understood. The caller treats it as a write to every table.
	Unknown Kind = iota
	// Read: SELECT, WITH … SELECT, VALUES, TABLE t, (SELECT …) UNION …: a
	// candidate for caching (subject to the other fields of [Statement]).
	Read
	// Write: INSERT, UPDATE, DELETE, REPLACE, MERGE, upserts, INSERT … SELECT,
	// writable CTEs, PostgreSQL's SELECT … INTO new_table and COPY (DML
	// RETURNING …) TO. Written names the tables it writes. A statement that
	// would be Neutral but runs a function [FunctionKind] does not know
	// (SET @x = f(), EXPLAIN ANALYZE SELECT f(), DECLARE … CURSOR FOR SELECT
	// f(), COPY (SELECT f()) TO) is a Write that is not Complete: the
	// function may write anything, as it may in a read.
	Write
	// Neutral: changes no table data and must not be cached: transaction
	// control, savepoints, SET/RESET/SHOW, plain EXPLAIN, LISTEN/NOTIFY,
	// PREPARE/DEALLOCATE, USE, LOCK TABLE(S), cursors, reading PRAGMAs.
	Neutral
	// Schema: DDL, TRUNCATE, CALL, DO, maintenance (VACUUM, ANALYZE, …),
	// COPY … FROM, LOAD DATA, writing PRAGMAs, ATTACH/DETACH. The caller treats
	// it as a write to every table; Tables is still filled where known.
	Schema
)

// String returns the kind's name in lower case.
func (k Kind) String() string {
	switch k {
	case Read:
		return "read"
	case Write:
		return "write"
	case Neutral:
		return "neutral"
	case Schema:
		return "schema"
	}
	return "unknown"
}

// Statement is what [Classify] learned about a piece of SQL (one statement or
// several separated by ";"). Its slices are freshly allocated by each call;
// a caller that shares one Statement (a memo keyed by SQL) must not modify them.
type Statement struct {
	// Kind is the statement's kind. For several statements, the strongest
	// kind wins in the order Schema > Unknown > Write > Neutral > Read, so
	// a Read combined with anything else is never a Read.
	Kind Kind
	// Tables lists every base table referenced anywhere (FROM, JOIN,
	// subqueries, CTE bodies, DML targets, USING, UPDATE … FROM, INSERT …
	// SELECT sources, SQLite's x IN t), normalised with [TableName], sorted
	// and deduplicated.
	// CTE names, aliases and table functions are not tables.
	Tables []string
	// Written is the subset of Tables that the statement writes, sorted and
	// deduplicated.
	Written []string
	// Complete is true when every table reference was understood. When false,
	// Tables may be missing some: do not cache a read, invalidate everything
	// after a write. A PostgreSQL (or Generic) read of a column named
	// last_value or is_called is not Complete: it may read a sequence, which
	// nextval and setval change without naming it as a table.
	Complete bool
	// Tx is what the statement does to the session's transaction when it
	// is transaction control sent as SQL (BEGIN, COMMIT, SET autocommit, XA,
	// PREPARE TRANSACTION…); for several statements, the last one's.
	Tx TxControl
	// Locking: FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE, LOCK IN SHARE
	// MODE, LOCK TABLE(S).
	Locking bool
	// Returning: a RETURNING clause (PostgreSQL, SQLite, MariaDB).
	Returning bool
	// Into: SELECT … INTO (variables, a file or a new table). Never cache.
	Into bool
	// Catalog: reads or writes system catalogs (pg_catalog, pg_* relations,
	// information_schema, performance_schema, mysql.*, sys.*, sqlite_*
	// tables, pragma_* table-valued functions, PRAGMA statements).
	Catalog bool
	// Functions lists, in lower case, every function called and every niladic
	// SQL value function used (CURRENT_TIMESTAMP, CURRENT_USER, …), sorted and
	// deduplicated. Schema-qualified calls keep their qualifier
	// ("myschema.fn"). Judge each with [FunctionKind]; this applies to every
	// kind of statement, Neutral ones (SET x = f()) included.
	Functions []string
	// Statements is the number of non-empty statements in the SQL text.
	// A cache may refuse to store the result of more than one.
	Statements int
}
