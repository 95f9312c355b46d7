// Package pgadmin creates and drops scratch PostgreSQL databases for the
// benchmark programs (the tests use internal/testdb).
package pgadmin

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // the admin connection
)

// DefaultAdmin is the admin connection of this machine's PostgreSQL.
const DefaultAdmin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable"

// Fresh creates a database through admin and returns its DSN and
// the function dropping it.
func Fresh(admin string) (string, func(), error) {
	db, err := sql.Open("pgx", admin)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL unreachable through %q (use -pg off to skip it): %w", admin, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gcbench_" + hex.EncodeToString(b[:])
	if _, err := db.Exec(`CREATE DATABASE "` + name + `"`); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() {
		defer db.Close()
		if _, err := db.Exec(`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`); err != nil {
			fmt.Fprintf(os.Stderr, "pgadmin: drop database %s: %v\n", name, err)
		}
	}
	return ReplaceDBName(admin, name), drop, nil
}

// ReplaceDBName sets dbname in a key=value DSN.
func ReplaceDBName(dsn, name string) string {
	var out []string
	found := false
	for _, f := range strings.Fields(dsn) {
		if strings.HasPrefix(f, "dbname=") {
			f, found = "dbname="+name, true
		}
		out = append(out, f)
	}
	if !found {
		out = append(out, "dbname="+name)
	}
	return strings.Join(out, " ")
}
