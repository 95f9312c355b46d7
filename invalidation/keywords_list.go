package invalidation

// keyword identifies a word the parser cares about; kwNone for any other word.
type keyword uint16

const (
	kwNone keyword = iota
	kwAbort
	kwAll
	kwAlter
	kwAnalyse
	kwAnalyze
	kwAnd
	kwAny
	kwApply
	kwArray
	kwAs
	kwAttach
	kwBegin
	kwBetween
	kwBy
	kwCall
	kwCase
	kwChar
	kwCharacter
	kwCheck
	kwCheckpoint
	kwClose
	kwCluster
	kwComment
	kwCommit
	kwConcurrently
	kwConflict
	kwCopy
	kwCreate
	kwCross
	kwCurrentCatalog
	kwCurrentDate
	kwCurrentRole
	kwCurrentSchema
	kwCurrentTime
	kwCurrentTimestamp
	kwCurrentUser
	kwDeallocate
	kwDeclare
	kwDefault
	kwDelayed
	kwDelete
	kwDesc
	kwDescribe
	kwDetach
	kwDiscard
	kwDistinct
	kwDo
	kwDouble
	kwDrop
	kwDual
	kwDumpfile
	kwElse
	kwEnd
	kwEscape
	kwExcept
	kwExec
	kwExecute
	kwExists
	kwExplain
	kwExtended
	kwFetch
	kwFilter
	kwFlush
	kwFor
	kwForce
	kwForeign
	kwFormat
	kwFrom
	kwFull
	kwGet
	kwGrant
	kwGroup
	kwHandler
	kwHaving
	kwHelp
	kwHighPriority
	kwIf
	kwIgnore
	kwIlike
	kwImport
	kwIn
	kwIndex
	kwIndexed
	kwInfile
	kwInner
	kwInsert
	kwInstall
	kwIntersect
	kwInto
	kwIs
	kwJoin
	kwKey
	kwKill
	kwLateral
	kwLeft
	kwLike
	kwLimit
	kwListen
	kwLoad
	kwLocaltime
	kwLocaltimestamp
	kwLock
	kwLowPriority
	kwMaterialized
	kwMerge
	kwMinus
	kwMode
	kwMove
	kwNatural
	kwNo
	kwNot
	kwNotify
	kwNowait
	kwNull
	kwOf
	kwOffset
	kwOn
	kwOnly
	kwOptimize
	kwOr
	kwOrder
	kwOrdinality
	kwOuter
	kwOutfile
	kwOver
	kwPartition
	kwPartitions
	kwPlan
	kwPragma
	kwPrecision
	kwPrepare
	kwPrimary
	kwProcedure
	kwQualify
	kwQuery
	kwQuick
	kwReassign
	kwRecursive
	kwReferences
	kwRefresh
	kwReindex
	kwRelease
	kwRename
	kwRepair
	kwRepeatable
	kwReplace
	kwReset
	kwReturning
	kwRevoke
	kwRight
	kwRollback
	kwRow
	kwRows
	kwSavepoint
	kwSecurity
	kwSelect
	kwSessionUser
	kwSet
	kwShare
	kwShow
	kwSkip
	kwSome
	kwStart
	kwStraightJoin
	kwSysdate
	kwSystemUser
	kwTable
	kwTables
	kwTablesample
	kwTemp
	kwTemporary
	kwThen
	kwTo
	kwTransaction
	kwTruncate
	kwUninstall
	kwUnion
	kwUnique
	kwUnlisten
	kwUnlock
	kwUnlogged
	kwUpdate
	kwUpsert
	kwUse
	kwUser
	kwUsing
	kwUtcDate
	kwUtcTime
	kwUtcTimestamp
	kwVacuum
	kwValue
	kwValues
	kwVarying
	kwVerbose
	kwWhen
	kwWhere
	kwWindow
	kwWith
	kwWithin
	kwXa
	kwCount
)

// keywords maps each keyword, in lower case, to its identifier.
var keywords = map[string]keyword{
	"abort":             kwAbort,
	"all":               kwAll,
	"alter":             kwAlter,
	"analyse":           kwAnalyse,
	"analyze":           kwAnalyze,
	"and":               kwAnd,
	"any":               kwAny,
	"apply":             kwApply,
	"array":             kwArray,
	"as":                kwAs,
	"attach":            kwAttach,
	"begin":             kwBegin,
	"between":           kwBetween,
	"by":                kwBy,
	"call":              kwCall,
	"case":              kwCase,
	"char":              kwChar,
	"character":         kwCharacter,
	"check":             kwCheck,
	"checkpoint":        kwCheckpoint,
	"close":             kwClose,
	"cluster":           kwCluster,
	"comment":           kwComment,
	"commit":            kwCommit,
	"concurrently":      kwConcurrently,
	"conflict":          kwConflict,
	"copy":              kwCopy,
	"create":            kwCreate,
	"cross":             kwCross,
	"current_catalog":   kwCurrentCatalog,
	"current_date":      kwCurrentDate,
	"current_role":      kwCurrentRole,
	"current_schema":    kwCurrentSchema,
	"current_time":      kwCurrentTime,
	"current_timestamp": kwCurrentTimestamp,
	"current_user":      kwCurrentUser,
	"deallocate":        kwDeallocate,
	"declare":           kwDeclare,
	"default":           kwDefault,
	"delayed":           kwDelayed,
	"delete":            kwDelete,
	"desc":              kwDesc,
	"describe":          kwDescribe,
	"detach":            kwDetach,
	"discard":           kwDiscard,
	"distinct":          kwDistinct,
	"do":                kwDo,
	"double":            kwDouble,
	"drop":              kwDrop,
	"dual":              kwDual,
	"dumpfile":          kwDumpfile,
	"else":              kwElse,
	"end":               kwEnd,
	"escape":            kwEscape,
	"except":            kwExcept,
	"exec":              kwExec,
	"execute":           kwExecute,
	"exists":            kwExists,
	"explain":           kwExplain,
	"extended":          kwExtended,
	"fetch":             kwFetch,
	"filter":            kwFilter,
	"flush":             kwFlush,
	"for":               kwFor,
	"force":             kwForce,
	"foreign":           kwForeign,
	"format":            kwFormat,
	"from":              kwFrom,
	"full":              kwFull,
	"get":               kwGet,
	"grant":             kwGrant,
	"group":             kwGroup,
	"handler":           kwHandler,
	"having":            kwHaving,
	"help":              kwHelp,
	"high_priority":     kwHighPriority,
	"if":                kwIf,
	"ignore":            kwIgnore,
	"ilike":             kwIlike,
	"import":            kwImport,
	"in":                kwIn,
	"index":             kwIndex,
	"indexed":           kwIndexed,
	"infile":            kwInfile,
	"inner":             kwInner,
	"insert":            kwInsert,
	"install":           kwInstall,
	"intersect":         kwIntersect,
	"into":              kwInto,
	"is":                kwIs,
	"join":              kwJoin,
	"key":               kwKey,
	"kill":              kwKill,
	"lateral":           kwLateral,
	"left":              kwLeft,
	"like":              kwLike,
	"limit":             kwLimit,
	"listen":            kwListen,
	"load":              kwLoad,
	"localtime":         kwLocaltime,
	"localtimestamp":    kwLocaltimestamp,
	"lock":              kwLock,
	"low_priority":      kwLowPriority,
	"materialized":      kwMaterialized,
	"merge":             kwMerge,
	"minus":             kwMinus,
	"mode":              kwMode,
	"move":              kwMove,
	"natural":           kwNatural,
	"no":                kwNo,
	"not":               kwNot,
	"notify":            kwNotify,
	"nowait":            kwNowait,
	"null":              kwNull,
	"of":                kwOf,
	"offset":            kwOffset,
	"on":                kwOn,
	"only":              kwOnly,
	"optimize":          kwOptimize,
	"or":                kwOr,
	"order":             kwOrder,
	"ordinality":        kwOrdinality,
	"outer":             kwOuter,
	"outfile":           kwOutfile,
	"over":              kwOver,
	"partition":         kwPartition,
	"partitions":        kwPartitions,
	"plan":              kwPlan,
	"pragma":            kwPragma,
	"precision":         kwPrecision,
	"prepare":           kwPrepare,
	"primary":           kwPrimary,
	"procedure":         kwProcedure,
	"qualify":           kwQualify,
	"query":             kwQuery,
	"quick":             kwQuick,
	"reassign":          kwReassign,
	"recursive":         kwRecursive,
	"references":        kwReferences,
	"refresh":           kwRefresh,
	"reindex":           kwReindex,
	"release":           kwRelease,
	"rename":            kwRename,
	"repair":            kwRepair,
	"repeatable":        kwRepeatable,
	"replace":           kwReplace,
	"reset":             kwReset,
	"returning":         kwReturning,
	"revoke":            kwRevoke,
	"right":             kwRight,
	"rollback":          kwRollback,
	"row":               kwRow,
	"rows":              kwRows,
	"savepoint":         kwSavepoint,
	"security":          kwSecurity,
	"select":            kwSelect,
	"session_user":      kwSessionUser,
	"set":               kwSet,
	"share":             kwShare,
	"show":              kwShow,
	"skip":              kwSkip,
	"some":              kwSome,
	"start":             kwStart,
	"straight_join":     kwStraightJoin,
	"sysdate":           kwSysdate,
	"system_user":       kwSystemUser,
	"table":             kwTable,
	"tables":            kwTables,
	"tablesample":       kwTablesample,
	"temp":              kwTemp,
	"temporary":         kwTemporary,
	"then":              kwThen,
	"to":                kwTo,
	"transaction":       kwTransaction,
	"truncate":          kwTruncate,
	"uninstall":         kwUninstall,
	"union":             kwUnion,
	"unique":            kwUnique,
	"unlisten":          kwUnlisten,
	"unlock":            kwUnlock,
	"unlogged":          kwUnlogged,
	"update":            kwUpdate,
	"upsert":            kwUpsert,
	"use":               kwUse,
	"user":              kwUser,
	"using":             kwUsing,
	"utc_date":          kwUtcDate,
	"utc_time":          kwUtcTime,
	"utc_timestamp":     kwUtcTimestamp,
	"vacuum":            kwVacuum,
	"value":             kwValue,
	"values":            kwValues,
	"varying":           kwVarying,
	"verbose":           kwVerbose,
	"when":              kwWhen,
	"where":             kwWhere,
	"window":            kwWindow,
	"with":              kwWith,
	"within":            kwWithin,
	"xa":                kwXa,
}
