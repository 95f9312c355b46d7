// Command gormcache looks at and invalidates the store of a gormcache
// application from the shell: after a write made outside the application,
// to see what a cached entry holds, to read and write low-level entries, to
// run the PostgreSQL notification triggers and listener or the logical
// replication listener, and to measure the cache on one's own database.
//
//	go install github.com/gormcache/gormcache/cmd/gormcache@latest
//
//	gormcache [global flags] COMMAND [flags] [arguments]
//
// Commands:
//
//	invalidate TABLE…              bump tables: every cached result that read them is stale
//	flush                          bump the global tag "*": everything is stale (no KEYS/SCAN)
//	versions [TABLE…]              print the current versions of tables and of "*"
//	inspect KEY                    decode an entry: SQL, typed arguments, tables, freshness,
//	                               columns, rows, age, TTL (KEY from plugin.Explain; ll:KEY for
//	                               a low-level entry; or --sql … --arg … --dsn …)
//	get KEY --tables a,b           print a low-level entry (package lowlevel) as JSON
//	set KEY VALUE --ttl 5m --tables a,b
//	                               store a JSON value as a low-level entry
//	delete KEY…                    delete low-level entries
//	pg install-triggers --dsn … TABLE…
//	pg remove-triggers --dsn … TABLE…
//	pg listen --dsn … [TABLE…]     bump tables as their notifications arrive, until interrupted
//	pg replicate --dsn … [TABLE…]  bump the rows of every commit, read from logical replication
//	                               (a slot and a publication), until interrupted
//	bench --dsn … [--redis ADDR]   the README benchmark table on your own database
//
// Global flags, accepted before or after the command's name: --store URL
// (default $GORMCACHE_STORE), --prefix (the plugin's key prefix, "gc"),
// --timeout (each store call and connection attempt, 5s). Store URLs:
//
//	redis://[user:pass@]host:port[/db][?prefix=gc:]     (rediss:// for TLS)
//	redis+cluster://host1:port,host2:port[?prefix=…]    (or redis://…?cluster=true)
//	redis+sentinel://host1:26379,host2:26379[/db]?master=NAME
//	memcache://host:port[,host2:port][?prefix=gc:]
//	file:///abs/dir
//
// prefix= is the store's own key prefix (redisstore/memcachestore
// Config.Prefix). --dsn (or $GORMCACHE_DSN) is a PostgreSQL DSN, or
// mysql://DSN or sqlite:PATH where another database works (inspect --sql,
// bench).
//
// Exit codes: 0 success; 1 runtime error (a server unreachable, an operation
// refused, an interrupted bench); 2 usage error (unknown command or flag,
// missing or malformed argument, bad URL); 3 no live entry under the key
// (inspect, get): none, or a stale or expired one, which inspect prints;
// 4 nothing to invalidate (invalidate, flush): the store had no version of
// "*" under the prefix before the bump, so the application has cached
// nothing there and --store (its ?prefix=, database or server) is probably
// not the application's; with invalidate --strict, also when a named table
// had no version. The bump is made either way, and a table without a
// version is always a warning on stderr. Redis and memcached are checked; a
// file store cannot tell.
//
// Exit code 4 rather than a warning alone: a script that runs
// "gormcache invalidate orders" after a batch job must not take a
// misconfigured --store for a success, yet a table that is merely not cached
// yet (while "*" exists) is no failure, so only --strict makes it one.
//
// Every command has --help, with examples.
package main
