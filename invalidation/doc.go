// Package invalidation classifies SQL statements for a query-result cache:
// is a statement a cacheable read, a write (and to which tables), a
// statement that changes no data, or schema work; which tables does it
// touch; which functions does it call.
//
// [Classify] is the entry point. It runs a one-pass tokenizer (strings with
// ” and, for MySQL, backslash escapes, PostgreSQL E'…' and dollar-quoted
// strings, "…", `…` and […] identifiers, --, # and /* */ comments, MySQL's
// executable /*! … */ comments, placeholders) and a forgiving
// recursive-descent parser over the tokens that understands FROM lists,
// joins, subqueries, CTEs, set operations and the DML forms of PostgreSQL,
// MySQL/MariaDB and SQLite. It never panics and never fails: input it does
// not understand is reported as [Unknown] or with Complete set to false.
//
// The rules lean one way: a missing table means stale data while an extra
// table only means extra invalidation, so when in doubt a name is taken as a
// table, and a statement that cannot be understood says so.
//
// [TableName] normalises the table names GORM gives (quoted, qualified) the
// same way Classify normalises the names it finds, and [FunctionKind] judges
// the functions a statement calls.
package invalidation
