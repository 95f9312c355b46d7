package invalidation

import "strings"

// TableName normalises one table identifier as written in SQL or as GORM
// gives it: `users`, `"Users"`, "`shop`.`users`", `public.users`,
// `[dbo].[x]`. It strips the quotes (" ` [ ]), keeps only the last part of
// a qualified name (dropping schema or database), and lower-cases it. Every
// dialect is folded: two tables differing only by case are then invalidated
// together, which is safe, whereas treating them apart could miss one.
func TableName(name string) string {
	name = strings.TrimSpace(name)
	// Find the start of the last part: the last dot outside quotes.
	last := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '"', '`', '[':
			q := c
			if q == '[' {
				q = ']'
			}
			for i++; i < len(name); i++ {
				if name[i] == q {
					if q != ']' && i+1 < len(name) && name[i+1] == q {
						i++
						continue
					}
					break
				}
			}
		case '.':
			last = i + 1
		}
	}
	return strings.ToLower(unquote(strings.TrimSpace(name[last:])))
}

// unquote removes one level of SQL quoting ("x", `x`, [x], 'x') from s, with
// doubled quote characters inside undoubled; other text is returned as is.
func unquote(s string) string {
	if len(s) < 2 {
		return s
	}
	open, close := s[0], s[len(s)-1]
	switch {
	case open == '[' && close == ']':
		return s[1 : len(s)-1]
	case (open == '"' || open == '`' || open == '\'') && close == open:
		body := s[1 : len(s)-1]
		q := string(open)
		if strings.Contains(body, q+q) {
			body = strings.ReplaceAll(body, q+q, q)
		}
		return body
	case (open == 'E' || open == 'e' || open == 'N' || open == 'n') && len(s) >= 3 && s[1] == '\'' && close == '\'':
		return unquote(s[1:])
	}
	return s
}
