package pgrepl

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/gormcache/gormcache/internal/core"
	"github.com/gormcache/gormcache/invalidation"
	"github.com/gormcache/gormcache/plugin"
	"github.com/jackc/pglogrepl"
)

// maxRows bounds the rows of a table one bump names: beyond it the
// change is the table's (an entry depends on at most core.MaxRowValues
// values of a column anyway).
const maxRows = core.MaxRowValues

// Type OIDs of the integer types: only their values can key entries.
const (
	oidInt8 = 20
	oidInt2 = 21
	oidInt4 = 23
)

// relation is what a Relation message says about a table.
type relation struct {
	table string // SQL name, for plugin.Change
	tag   string // its tag (invalidation.TableName)
	cols  []relColumn
}

type relColumn struct {
	name    string
	key     bool // part of the replica identity
	integer bool
}

// decoder turns pgoutput messages into the changes of each transaction.
// It is owned by the goroutine reading the stream.
type decoder struct {
	rels map[uint32]*relation
	tx   *txChanges
}

// txChanges are the changes of one transaction, by table tag.
type txChanges struct {
	xid     uint32 // from its Begin (0: never seen)
	tables  map[string]*plugin.Change
	rows    int
	unclear bool // a message could not be told: everything watched goes
}

func newTx() *txChanges { return &txChanges{tables: map[string]*plugin.Change{}} }

// decoded is what one message amounts to.
type decoded struct {
	commit     bool
	end        pglogrepl.LSN // of a commit
	commitTime time.Time
	tx         *txChanges // of a commit
}

// parse decodes a pgoutput message; a malformed one is an error wrapping
// ErrMalformed (pglogrepl does not check lengths everywhere: a panic in it
// is such an error too).
func parse(data []byte) (m pglogrepl.Message, err error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	if !sized(data) {
		return nil, fmt.Errorf("%w: %c message: lengths exceed the message", ErrMalformed, data[0])
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("%w: %c message: %v", ErrMalformed, data[0], r)
		}
	}()
	m, err = pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %c message: %v", ErrMalformed, data[0], err)
	}
	return m, nil
}

// sized reports whether the lengths a row or TRUNCATE message declares fit
// in it (pglogrepl allocates what they say before reading).
func sized(data []byte) bool {
	rest := data[1:]
	take := func(n int) bool {
		if n < 0 || len(rest) < n {
			return false
		}
		rest = rest[n:]
		return true
	}
	tuple := func() bool {
		if !take(2) {
			return false
		}
		n := int(binary.BigEndian.Uint16(data[len(data)-len(rest)-2:]))
		for range n {
			if !take(1) {
				return false
			}
			if k := data[len(data)-len(rest)-1]; k == 't' || k == 'b' {
				if !take(4) {
					return false
				}
				if !take(int(binary.BigEndian.Uint32(data[len(data)-len(rest)-4:]))) {
					return false
				}
			}
		}
		return true
	}
	switch data[0] {
	case 'I', 'D':
		return take(5) && tuple()
	case 'U':
		if !take(5) {
			return false
		}
		if k := data[5]; k == 'K' || k == 'O' {
			return tuple() && take(1) && tuple()
		}
		return tuple()
	case 'T':
		if !take(5) {
			return false
		}
		return int64(len(rest)) >= 4*int64(binary.BigEndian.Uint32(data[1:5]))
	}
	return true
}

// handle decodes one message of the stream. An error wraps ErrMalformed;
// the transaction it belongs to is then unclear.
func (d *decoder) handle(data []byte) (decoded, error) {
	m, err := parse(data)
	if err != nil {
		d.current().unclear = true
		return decoded{}, err
	}
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		rel := &relation{table: quoteIdent(m.RelationName)}
		rel.tag = invalidation.TableName(rel.table)
		for _, c := range m.Columns {
			if c == nil {
				d.current().unclear = true
				return decoded{}, fmt.Errorf("%w: relation %s: a nil column", ErrMalformed, m.RelationName)
			}
			rel.cols = append(rel.cols, relColumn{name: c.Name, key: c.Flags&1 != 0,
				integer: c.DataType == oidInt2 || c.DataType == oidInt4 || c.DataType == oidInt8})
		}
		d.rels[m.RelationID] = rel
	case *pglogrepl.BeginMessage:
		d.tx = newTx()
		d.tx.xid = m.Xid
	case *pglogrepl.InsertMessage:
		return decoded{}, d.row(m.RelationID, false, 0, nil, m.Tuple)
	case *pglogrepl.UpdateMessage:
		return decoded{}, d.row(m.RelationID, true, m.OldTupleType, m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		return decoded{}, d.row(m.RelationID, false, m.OldTupleType, m.OldTuple, nil)
	case *pglogrepl.TruncateMessage:
		tx := d.current()
		for _, id := range m.RelationIDs {
			rel := d.rels[id]
			if rel == nil {
				tx.unclear = true
				return decoded{}, fmt.Errorf("%w: TRUNCATE of relation %d, never described", ErrMalformed, id)
			}
			tx.add(rel, nil, true)
		}
	case *pglogrepl.CommitMessage:
		tx := d.current()
		d.tx = nil
		return decoded{commit: true, end: m.TransactionEndLSN, commitTime: m.CommitTime, tx: tx}, nil
	}
	// (Type, Origin and logical decoding messages change no row)
	return decoded{}, nil
}

// current returns the transaction being decoded (a new, unclear one when
// its Begin was never seen).
func (d *decoder) current() *txChanges {
	if d.tx == nil {
		d.tx = newTx()
		d.tx.unclear = true
	}
	return d.tx
}

// row adds a row's change: old is the old tuple ('K': the replica
// identity's columns only; 'O': all), or nil for an INSERT, or for an
// UPDATE (update) that left the identity alone; nw the new tuple, nil for
// a DELETE.
func (d *decoder) row(id uint32, update bool, oldType uint8, old, nw *pglogrepl.TupleData) error {
	tx := d.current()
	rel := d.rels[id]
	if rel == nil {
		tx.unclear = true
		return fmt.Errorf("%w: a change of relation %d, never described", ErrMalformed, id)
	}
	var r plugin.ChangedRow
	var err error
	if nw != nil {
		if r.After, err = rel.image(nw, false); err != nil {
			tx.add(rel, nil, true)
			return err
		}
	}
	switch {
	case old != nil:
		if r.Before, err = rel.image(old, oldType == 'K'); err != nil {
			tx.add(rel, nil, true)
			return err
		}
	case update:
		// an UPDATE without an old tuple: the identity's values are
		// unchanged; nothing else is known of the row before
		r.Before = map[string]any{}
		for _, c := range rel.cols {
			if v, ok := r.After[c.name]; ok && c.key {
				r.Before[c.name] = v
			}
		}
	}
	if r.Before == nil && r.After == nil {
		tx.add(rel, nil, true) // (never: a DELETE has its old tuple)
		return nil
	}
	tx.add(rel, &r, false)
	return nil
}

// image returns the integer columns' values of a tuple: text, or nil for
// NULL. keyOnly: the tuple is the replica identity's ('K'), whose other
// columns read as NULL but are unknown. Unchanged TOASTed values and
// columns of other types are left out (unknown).
func (rel *relation) image(td *pglogrepl.TupleData, keyOnly bool) (map[string]any, error) {
	if td == nil || len(td.Columns) != len(rel.cols) {
		return nil, fmt.Errorf("%w: a tuple of %s with %d columns, the relation has %d", ErrMalformed, rel.table, tupleLen(td), len(rel.cols))
	}
	img := make(map[string]any, 2)
	for i, c := range td.Columns {
		rc := rel.cols[i]
		if c == nil || !rc.integer || keyOnly && !rc.key {
			continue
		}
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			img[rc.name] = nil
		case pglogrepl.TupleDataTypeText:
			img[rc.name] = string(c.Data)
		}
	}
	return img, nil
}

func tupleLen(td *pglogrepl.TupleData) int {
	if td == nil {
		return 0
	}
	return len(td.Columns)
}

// add records a change of rel: a row (nil with all: any row).
func (tx *txChanges) add(rel *relation, r *plugin.ChangedRow, all bool) {
	c := tx.tables[rel.tag]
	if c == nil {
		c = &plugin.Change{Table: rel.table}
		tx.tables[rel.tag] = c
	}
	tx.rows++
	switch {
	case c.AllRows:
	case all || len(c.Rows) >= maxRows:
		c.AllRows, c.Rows = true, nil
	default:
		c.Rows = append(c.Rows, *r)
	}
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
