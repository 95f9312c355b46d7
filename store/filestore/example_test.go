package filestore_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gormcache/gormcache/store/filestore"
)

func ExampleNew() {
	dir, err := os.MkdirTemp("", "gormcache-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// Every process of the host that opens dir shares the cache.
	s, err := filestore.New(dir, filestore.Config{MaxBytes: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	ctx := context.Background()
	_ = s.Set(ctx, "query-key", []byte("rows stamped with versions"), 5*time.Minute)

	versions := make([]uint64, 1)
	b, _ := s.Get(ctx, "query-key", []string{"users"}, versions)
	fmt.Printf("%s, users known: %v\n", b, versions[0] != 0)

	// A write: hold the table while it runs, release after COMMIT.
	lease, _ := s.Bump(ctx, []string{"users"}, 30*time.Second)
	_ = s.Versions(ctx, []string{"users"}, versions)
	fmt.Println("while held:", versions[0])
	_ = s.Release(ctx, []string{"users"}, lease)
	// Output:
	// rows stamped with versions, users known: true
	// while held: 0
}
