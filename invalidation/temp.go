package invalidation

import "strings"

// TempTable returns the name (normalised with TableName) of the temporary
// table or view a statement creates — CREATE [GLOBAL|LOCAL] TEMP[ORARY]
// TABLE|VIEW [IF NOT EXISTS] name, PostgreSQL's CREATE TABLE pg_temp.name
// and SELECT … INTO TEMP name — and whether it does. A temporary table
// exists in one session and shadows a base table of its name there.
func TempTable(d Dialect, sql string) (string, bool) {
	l := lexer{src: sql, d: d}
	l.tokenize()
	r := &rowParser{d: d, src: sql, toks: l.toks}
	for start := 0; start < len(r.toks); start++ {
		if r.at(start).kind == tSemi {
			continue
		}
		i := start
		switch {
		case r.word(i, "create"):
			i++
			for r.word(i, "or") || r.word(i, "replace") || r.word(i, "global") || r.word(i, "local") {
				i++
			}
			temp := r.word(i, "temp") || r.word(i, "temporary")
			if temp {
				i++
			}
			if r.word(i, "unlogged") {
				i++
			}
			if !r.word(i, "table") && !r.word(i, "view") {
				break
			}
			i++
			if r.word(i, "if") && r.word(i+1, "not") && r.word(i+2, "exists") {
				i += 3
			}
			from := i
			name, ok := r.qualified(i)
			if !ok {
				break
			}
			if !temp && !(d != MySQL && strings.EqualFold(identText(sql, r.at(from)), "pg_temp") && r.at(from+1).kind == tDot) &&
				!(d == SQLite && strings.EqualFold(identText(sql, r.at(from)), "temp") && r.at(from+1).kind == tDot) {
				break
			}
			return name, true
		case r.word(i, "select"):
			for j := i; j < len(r.toks) && r.at(j).kind != tSemi; j++ {
				if r.word(j, "into") && (r.word(j+1, "temp") || r.word(j+1, "temporary")) {
					k := j + 2
					if r.word(k, "table") {
						k++
					}
					if name, ok := r.qualified(k); ok {
						return name, true
					}
				}
			}
		}
		for start < len(r.toks) && r.at(start).kind != tSemi {
			start++
		}
	}
	return "", false
}

// qualified reads a (qualified) name at token i, normalised with TableName.
func (r *rowParser) qualified(i int) (string, bool) {
	if !r.nameTok(r.at(i)) {
		return "", false
	}
	end := i + 1
	for r.at(end).kind == tDot && r.nameTok(r.at(end+1)) {
		end += 2
	}
	name := TableName(r.src[r.at(i).start:r.at(end-1).end])
	return name, name != ""
}
