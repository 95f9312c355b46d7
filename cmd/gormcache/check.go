package main

import (
	"database/sql"
	"fmt"

	"github.com/gormcache/gormcache/keys"
)

// canonicalQuery is an entry's check bytes read back (keys.ParseQuery), as
// inspect prints it.
type canonicalQuery struct {
	Format   int            `json:"format"`
	Dialect  string         `json:"dialect"`
	Identity string         `json:"identity"`
	SQL      string         `json:"sql"`
	Args     []canonicalArg `json:"args"`
}

// canonicalArg is one argument, as the driver received it.
type canonicalArg struct {
	Name  string `json:"name,omitempty"` // sql.Named
	Type  string `json:"type"`           // nil, bool, int64, uint64, float64, string, []byte, time
	Value any    `json:"value"`
}

// parseCheck decodes the check bytes of an entry (keys.AppendQuery's
// output). It never panics, whatever b holds.
func parseCheck(b []byte) (canonicalQuery, error) {
	q, err := keys.ParseQuery(b)
	if err != nil {
		return canonicalQuery{}, err
	}
	c := canonicalQuery{Format: keys.FormatVersion, Dialect: q.Dialect, Identity: q.Identity, SQL: q.SQL}
	for _, v := range q.Args {
		var a canonicalArg
		if n, ok := v.(sql.NamedArg); ok {
			a.Name, v = n.Name, n.Value
		}
		a.Value = v
		switch v.(type) {
		case nil:
			a.Type = "nil"
		case []byte:
			a.Type = "[]byte"
		case keys.TimeArg:
			a.Type = "time"
		default:
			a.Type = fmt.Sprintf("%T", v) // bool, int64, uint64, float64, string
		}
		c.Args = append(c.Args, a)
	}
	return c, nil
}

// display is an argument for people: type and value.
func (a canonicalArg) display() string {
	var v string
	switch x := a.Value.(type) {
	case nil:
		return "NULL"
	case string:
		v = fmt.Sprintf("%q", x)
	case []byte:
		if x == nil {
			return "[]byte(nil)"
		}
		v = formatBytes(x, 0)
	case keys.TimeArg:
		v = x.String()
	default:
		v = fmt.Sprint(x)
	}
	s := a.Type + " " + v
	if a.Name != "" {
		s = "@" + a.Name + " = " + s
	}
	return s
}
