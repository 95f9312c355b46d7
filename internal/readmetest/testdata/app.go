// The application that README.md's snippets are written in: its types and
// functions, which the snippets use without declaring them.
package snippets

import "time"

// User is a row of users.
type User struct {
	ID   uint
	Name string
}

// Report is a value the application computes and caches.
type Report struct {
	Day   time.Time
	Total int64
}
