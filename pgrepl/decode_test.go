package pgrepl

import (
	"encoding/binary"
	"errors"
	"testing"
)

// relationMsg is a pgoutput Relation message for public.posts (id int8
// key, user_id int4, title text).
func relationMsg() []byte {
	b := []byte{'R'}
	b = binary.BigEndian.AppendUint32(b, 7)
	b = append(b, "public\x00posts\x00"...)
	b = append(b, 'd')
	b = binary.BigEndian.AppendUint16(b, 3)
	for _, c := range []struct {
		flags byte
		name  string
		typ   uint32
	}{{1, "id", oidInt8}, {0, "user_id", oidInt4}, {0, "title", 25}} {
		b = append(b, c.flags)
		b = append(b, c.name+"\x00"...)
		b = binary.BigEndian.AppendUint32(b, c.typ)
		b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
	}
	return b
}

// tuple encodes text values ("" as NULL, "u" as unchanged TOAST).
func tuple(vals ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(vals)))
	for _, v := range vals {
		switch v {
		case "":
			b = append(b, 'n')
		case "u":
			b = append(b, 'u')
		default:
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

func TestDecodeRows(t *testing.T) {
	t.Parallel()
	d := decoder{rels: map[uint32]*relation{}}
	must := func(data []byte) decoded {
		t.Helper()
		r, err := d.handle(data)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	must(relationMsg())
	must(append([]byte{'B'}, make([]byte, 20)...))
	// DELETE with the key only: the other columns read NULL but are unknown.
	must(append([]byte{'D', 0, 0, 0, 7, 'K'}, tuple("5", "", "")...))
	// UPDATE without an old tuple: the key is unchanged.
	must(append([]byte{'U', 0, 0, 0, 7, 'N'}, tuple("6", "9", "u")...))
	r := must(append([]byte{'C', 0}, make([]byte, 24)...))
	if !r.commit {
		t.Fatal("no commit")
	}
	c := r.tx.tables["posts"]
	if c == nil || len(c.Rows) != 2 {
		t.Fatalf("changes: %+v", r.tx.tables)
	}
	del, upd := c.Rows[0], c.Rows[1]
	if del.After != nil || len(del.Before) != 1 || del.Before["id"] != "5" {
		t.Errorf("delete: %+v", del)
	}
	if len(upd.Before) != 1 || upd.Before["id"] != "6" || upd.After["user_id"] != "9" || len(upd.After) != 2 {
		t.Errorf("update: %+v", upd)
	}
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	for name, data := range map[string][]byte{
		"empty":            nil,
		"unknown type":     {'Z', 1, 2},
		"short begin":      {'B', 1},
		"truncated tuple":  append([]byte{'I', 0, 0, 0, 7, 'N'}, tuple("5", "1", "x")[:6]...),
		"wrong column num": append([]byte{'I', 0, 0, 0, 7, 'N'}, tuple("5")...),
		"unknown relation": append([]byte{'I', 0, 0, 0, 8, 'N'}, tuple("5", "1", "x")...),
		"short relation":   relationMsg()[:12],
	} {
		d := decoder{rels: map[uint32]*relation{}}
		if _, err := d.handle(relationMsg()); err != nil {
			t.Fatal(err)
		}
		_, err := d.handle(data)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzDecode: no input panics the decoder; what it cannot read is an
// ErrMalformed.
func FuzzDecode(f *testing.F) {
	f.Add(relationMsg())
	f.Add(append([]byte{'I', 0, 0, 0, 7, 'N'}, tuple("5", "1", "x")...))
	f.Add(append([]byte{'U', 0, 0, 0, 7, 'O'}, append(tuple("5", "1", "x"), append([]byte{'N'}, tuple("5", "2", "u")...)...)...))
	f.Add([]byte{'T', 0, 0, 0, 1, 0, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := decoder{rels: map[uint32]*relation{}}
		if _, err := d.handle(relationMsg()); err != nil {
			t.Fatal(err)
		}
		if _, err := d.handle(data); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error not ErrMalformed: %v", err)
		}
	})
}
