package testdb

import (
	"os/exec"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Psql runs one statement through the psql program, on the database dsn
// names: a write made by another process, outside the application and the
// plugin. Without psql the test is skipped (failed under CI=true).
func Psql(t testing.TB, dsn, statement string) {
	t.Helper()
	path, err := exec.LookPath("psql")
	if err != nil {
		Unavailable(t, "psql", err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, "-X", "-v", "ON_ERROR_STOP=1", "-h", cfg.Host, "-p", strconv.Itoa(int(cfg.Port)),
		"-U", cfg.User, "-d", cfg.Database, "-c", statement).CombinedOutput()
	if err != nil {
		t.Fatalf("psql -c %q: %v\n%s", statement, err, out)
	}
}
