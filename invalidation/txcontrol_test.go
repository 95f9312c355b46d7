package invalidation

import "testing"

func TestTxControl(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    Dialect
		sql  string
		want TxControl
	}{
		{Postgres, "BEGIN", TxBegin},
		{Postgres, "begin transaction isolation level serializable", TxBegin},
		{Postgres, "START TRANSACTION READ WRITE", TxBegin},
		{SQLite, "BEGIN IMMEDIATE TRANSACTION", TxBegin},
		{MySQL, "BEGIN WORK", TxBegin},
		{MySQL, "XA START 'x'", TxBegin},
		{MySQL, "BEGIN NOT ATOMIC SELECT 1", TxNone},
		{Postgres, "COMMIT", TxEnd},
		{Postgres, "commit work", TxEnd},
		{Postgres, "END", TxEnd},
		{SQLite, "END TRANSACTION", TxEnd},
		{Postgres, "ROLLBACK", TxEnd},
		{Postgres, "ABORT", TxEnd},
		{MySQL, "ROLLBACK WORK", TxEnd},
		{MySQL, "COMMIT AND NO CHAIN", TxEnd},
		{MySQL, "COMMIT AND CHAIN", TxChain},
		{Postgres, "ROLLBACK AND CHAIN", TxChain},
		{Postgres, "ROLLBACK TO SAVEPOINT sp1", TxNone},
		{Postgres, "ROLLBACK TO sp1", TxNone},
		{MySQL, "ROLLBACK WORK TO SAVEPOINT sp1", TxNone},
		{Postgres, "SAVEPOINT sp1", TxNone},
		{Postgres, "RELEASE SAVEPOINT sp1", TxNone},
		{MySQL, "SET autocommit=0", TxAutocommitOff},
		{MySQL, "SET SESSION autocommit = OFF", TxAutocommitOff},
		{MySQL, "set @@autocommit := 0", TxAutocommitOff},
		{MySQL, "SET @@session.autocommit = 'OFF'", TxAutocommitOff},
		{MySQL, "SET autocommit = 1", TxAutocommitOn},
		{MySQL, "SET autocommit = true", TxAutocommitOn},
		{MySQL, "SET autocommit = 0, sql_mode = ''", TxAutocommitOff},
		{MySQL, "SET SESSION sql_mode = 'ANSI', SESSION autocommit = 0", TxAutocommitOff},
		{MySQL, "SET SESSION autocommit := 0, @x = 1", TxAutocommitOff},
		{MySQL, "SET autocommit = 0, autocommit = 1", TxAutocommitOn},
		{MySQL, "SET autocommit = @v", TxAutocommitOff},
		{MySQL, "SET @a = (SELECT 1), b = 2", TxNone},
		{MySQL, "SET sql_mode = 'x', names utf8mb4", TxNone},
		{MySQL, "SET names utf8mb4", TxNone},
		{Postgres, "PREPARE TRANSACTION 'gid1'", TxPrepare},
		{Postgres, "PREPARE q AS SELECT 1", TxNone},
		{Postgres, "COMMIT PREPARED 'gid1'", TxResolve},
		{Postgres, "ROLLBACK PREPARED 'gid1'", TxResolve},
		{MySQL, "XA PREPARE 'x'", TxPrepare},
		{MySQL, "XA COMMIT 'x'", TxResolve},
		{MySQL, "XA COMMIT 'x' ONE PHASE", TxResolve},
		{MySQL, "XA ROLLBACK 'x'", TxResolve},
		{MySQL, "XA END 'x'", TxNone},
		{Postgres, "UPDATE t SET a = 1", TxNone},
		{Postgres, "SELECT 1", TxNone},
		{Postgres, "BEGIN; UPDATE t SET a = 1; COMMIT", TxEnd},
		{Postgres, "UPDATE t SET a = 1; BEGIN", TxBegin},
	} {
		if got := Classify(tc.d, tc.sql).Tx; got != tc.want {
			t.Errorf("%s: Tx = %v, want %v", tc.sql, got, tc.want)
		}
	}
}
