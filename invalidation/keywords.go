package invalidation

// keyword flags.
const (
	// fReserved: the word ends a FROM list and is never a bare alias or table name.
	fReserved uint8 = 1 << iota
	// fNotFunc: the word followed by "(" is syntax, not a function call.
	fNotFunc
	// fJoin: the word can start a join operator.
	fJoin
	// fClause: the word starts a clause that ends a join condition.
	fClause
)

var kwFlags [kwCount]uint8

// niladic SQL value functions (used without parentheses), per dialect.
var niladic [kwCount]dialectSet

// dialectSet is a bit set of dialects.
type dialectSet uint8

func dialects(ds ...Dialect) dialectSet {
	var s dialectSet
	for _, d := range ds {
		s |= 1 << d
	}
	return s
}

func (s dialectSet) has(d Dialect) bool { return s&(1<<d) != 0 }

func init() {
	for _, k := range []keyword{
		kwWhere, kwGroup, kwHaving, kwOrder, kwLimit, kwOffset, kwFetch, kwFor, kwUnion,
		kwIntersect, kwExcept, kwMinus, kwWindow, kwReturning, kwSet, kwWhen, kwThen, kwElse,
		kwEnd, kwInto, kwLock, kwProcedure, kwQualify, kwOn, kwUsing, kwJoin, kwInner, kwLeft,
		kwRight, kwFull, kwCross, kwNatural, kwOuter, kwStraightJoin, kwLateral, kwSelect,
		kwFrom, kwValues, kwDefault, kwAs, kwWith, kwDo, kwAnd, kwOr, kwNot, kwIn, kwIs,
		kwTablesample, kwPartition, kwUse, kwForce, kwIgnore, kwIndexed, kwApply, kwLike,
		kwIlike, kwBetween, kwOnly, kwUpdate, kwDelete, kwInsert, kwCase, kwConflict,
		kwNull,
	} {
		kwFlags[k] |= fReserved
	}
	for _, k := range []keyword{
		kwAs, kwIn, kwOn, kwUsing, kwValues, kwValue, kwInto, kwFrom, kwJoin, kwWhere, kwAnd,
		kwOr, kwNot, kwSelect, kwOver, kwFilter, kwWithin, kwWhen, kwThen, kwElse, kwIs,
		kwLike, kwIlike, kwBetween, kwAny, kwAll, kwSome, kwArray, kwRow, kwTable, kwSet,
		kwReturning, kwBy, kwPartition, kwWindow, kwWith, kwKey, kwConflict, kwDefault,
		kwExcept, kwUnion, kwIntersect, kwMinus, kwLateral, kwOnly, kwGroup, kwHaving, kwOrder,
		kwLimit, kwOffset, kwDo, kwUpdate, kwDelete, kwExists, kwDistinct, kwIndex, kwForce,
		kwUse, kwIgnore, kwCase, kwOf, kwRows, kwTablesample, kwRepeatable, kwMaterialized,
		kwRecursive, kwEscape, kwFetch, kwFor, kwNull, kwPrimary, kwUnique, kwReferences,
		kwForeign, kwInner, kwOuter, kwNatural, kwCross, kwFull, kwEnd, kwTo, kwLock,
		kwQualify, kwReturning, kwStraightJoin, kwApply, kwOrdinality, kwProcedure,
		kwIndexed, kwPartitions, kwTables,
	} {
		kwFlags[k] |= fNotFunc
	}
	for _, k := range []keyword{
		kwWhere, kwGroup, kwHaving, kwOrder, kwLimit, kwOffset, kwFetch, kwFor, kwUnion,
		kwIntersect, kwExcept, kwMinus, kwWindow, kwReturning, kwSet, kwWhen, kwInto, kwLock,
		kwProcedure, kwQualify,
	} {
		kwFlags[k] |= fClause
	}
	for _, k := range []keyword{kwJoin, kwInner, kwLeft, kwRight, kwFull, kwCross, kwNatural, kwOuter, kwStraightJoin} {
		kwFlags[k] |= fJoin
	}

	all := dialects(Generic, Postgres, MySQL, SQLite)
	pg := dialects(Generic, Postgres)
	niladic[kwCurrentTimestamp] = all
	niladic[kwCurrentDate] = all
	niladic[kwCurrentTime] = all
	niladic[kwLocaltime] = dialects(Generic, Postgres, MySQL)
	niladic[kwLocaltimestamp] = dialects(Generic, Postgres, MySQL)
	niladic[kwCurrentUser] = dialects(Generic, Postgres, MySQL)
	niladic[kwSessionUser] = pg
	niladic[kwUser] = pg
	niladic[kwCurrentRole] = pg
	niladic[kwCurrentCatalog] = pg
	niladic[kwCurrentSchema] = pg
	niladic[kwSystemUser] = pg
	niladic[kwSysdate] = dialects(Generic, MySQL)
	niladic[kwUtcTimestamp] = dialects(Generic, MySQL)
	niladic[kwUtcDate] = dialects(Generic, MySQL)
	niladic[kwUtcTime] = dialects(Generic, MySQL)
}

// lookupKeyword returns the keyword for an unquoted word, case-insensitively,
// without allocating.
func lookupKeyword(w string) keyword {
	if len(w) < 2 || len(w) > 20 {
		return kwNone
	}
	var buf [20]byte
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return keywords[string(buf[:len(w)])]
}
