package testdb

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Cluster is a PostgreSQL server of a test's own (see [PrivatePostgres]),
// which the test may restart; the shared server on 5432 must never be.
type Cluster struct {
	// DSN connects to its database "postgres" as the superuser postgres.
	DSN  string
	Port int
	dir  string
	bin  string
	as   []string // the command prefix that runs a program as the postgres OS user
}

// PrivatePostgres initialises and starts a PostgreSQL cluster in a
// temporary directory, on a free port, with wal_level = logical and the
// settings given ("name = value" lines of postgresql.conf); it is stopped
// and removed when the test ends. Without the server's programs (initdb,
// pg_ctl) the test is skipped, or fails under CI=true.
func PrivatePostgres(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	bin, err := pgBin()
	if err != nil {
		Unavailable(t, "PostgreSQL's initdb and pg_ctl", err)
	}
	c := &Cluster{bin: bin}
	dir, err := os.MkdirTemp("", "gctest-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: as the postgres OS user, in a
		// directory it owns
		u, err := user.Lookup("postgres")
		if err != nil {
			Unavailable(t, "the postgres OS user (initdb refuses root)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
	}
	c.dir = filepath.Join(dir, "data")
	if out, err := c.command("initdb", "-D", c.dir, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.Port = freePort(t)
	conf := []string{
		"listen_addresses = '127.0.0.1'", "port = " + strconv.Itoa(c.Port), "unix_socket_directories = '" + dir + "'",
		"wal_level = logical", "max_wal_senders = 10", "max_replication_slots = 10",
		"fsync = off", "synchronous_commit = on", "shared_buffers = 32MB", "max_connections = 50",
	}
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n" + strings.Join(append(conf, settings...), "\n") + "\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c.DSN = fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", c.Port)
	c.pgctl(t, "start", "-w", "-t", "60", "-l", filepath.Join(dir, "log"))
	t.Cleanup(func() { _, _ = c.command("pg_ctl", "stop", "-D", c.dir, "-m", "immediate", "-w").CombinedOutput() })
	return c
}

// Restart stops the server (mode: "fast", a clean shutdown; "immediate", a
// crash) and starts it again, waiting until it accepts connections.
func (c *Cluster) Restart(t testing.TB, mode string) {
	t.Helper()
	c.pgctl(t, "stop", "-m", mode, "-w", "-t", "60")
	c.pgctl(t, "start", "-w", "-t", "60", "-l", filepath.Join(filepath.Dir(c.dir), "log"))
}

func (c *Cluster) pgctl(t testing.TB, args ...string) {
	t.Helper()
	args = append([]string{args[0], "-D", c.dir}, args[1:]...)
	if out, err := c.command("pg_ctl", args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(c.dir), "log"))
		t.Fatalf("pg_ctl %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, log)
	}
}

func (c *Cluster) command(program string, args ...string) *exec.Cmd {
	argv := append(append(append([]string{}, c.as...), filepath.Join(c.bin, program)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	return cmd
}

// pgBin finds the directory of initdb and pg_ctl: on the PATH, or under
// /usr/lib/postgresql (Debian's layout), the newest version first.
func pgBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("initdb not found on the PATH nor under /usr/lib/postgresql/*/bin")
}

// freePort returns a TCP port nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if port > 1024 {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
