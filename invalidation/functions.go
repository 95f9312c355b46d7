package invalidation

import "strings"

// FuncKind says whether a function's result may be cached.
type FuncKind uint8

const (
	// FuncUnknown: user-defined or not known. It may read or write anything:
	// the caller bypasses the cache on read and invalidates everything after
	// the statement runs.
	FuncUnknown FuncKind = iota
	// FuncStable: a built-in whose result depends only on its arguments and
	// the data read (aggregates, string, math, JSON, window functions, …).
	FuncStable
	// FuncVolatile: a built-in that changes no table but whose result must
	// not be cached: time, randomness, sequences, session state, locks, sleep.
	FuncVolatile
)

// String returns the kind's name in lower case.
func (k FuncKind) String() string {
	switch k {
	case FuncStable:
		return "stable"
	case FuncVolatile:
		return "volatile"
	}
	return "unknown"
}

// FunctionKind classifies a function name as Classify reports it (lower case,
// possibly schema-qualified) in dialect d. Names qualified with pg_catalog
// (PostgreSQL, Generic) are judged by their last part; other qualified names
// are FuncUnknown. For Generic, a name is volatile if it is volatile in any
// dialect and stable only if it is stable in every dialect.
func FunctionKind(d Dialect, name string) FuncKind {
	name = strings.ToLower(name)
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		if (d == Postgres || d == Generic) && name[:i] == "pg_catalog" {
			name = name[i+1:]
		} else {
			return FuncUnknown
		}
	}
	if d == Generic {
		for _, s := range dialectVolatile {
			if _, ok := s[name]; ok {
				return FuncVolatile
			}
		}
	}
	if _, ok := volatileAll[name]; ok {
		return FuncVolatile
	}
	if int(d) < len(dialectVolatile) {
		if _, ok := dialectVolatile[d][name]; ok {
			return FuncVolatile
		}
	}
	if _, ok := stableAll[name]; ok {
		return FuncStable
	}
	if int(d) < len(dialectStable) {
		if _, ok := dialectStable[d][name]; ok {
			return FuncStable
		}
	}
	if (d == Postgres || d == Generic) && (strings.HasPrefix(name, "pg_advisory") || strings.HasPrefix(name, "pg_try_advisory")) {
		return FuncVolatile
	}
	if (d == SQLite || d == Generic) && strings.HasPrefix(name, "pragma_") {
		return FuncStable // read-only table-valued pragma functions; the statement is Catalog
	}
	return FuncUnknown
}

func set(words string) map[string]struct{} {
	m := make(map[string]struct{})
	for _, w := range strings.Fields(words) {
		m[w] = struct{}{}
	}
	return m
}

// stableAll: deterministic built-ins with the same meaning in every dialect.
var stableAll = set(`
count sum avg min max coalesce nullif lower upper length abs round
cast trim ltrim rtrim replace substr
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
`)

// dialectStable: deterministic built-ins of one dialect (index: Dialect).
var dialectStable = [...]map[string]struct{}{
	Generic: set(``),
	Postgres: set(`
		greatest least char_length character_length octet_length bit_length substring position overlay
		concat concat_ws floor ceil ceiling mod power pow sqrt exp ln log log10 sign trunc div
		sin cos tan asin acos atan atan2 degrees radians pi cbrt gcd lcm width_bucket
		date_trunc date_part extract to_char to_number to_date to_timestamp make_date make_time
		make_timestamp make_timestamptz make_interval age justify_days justify_hours justify_interval
		isfinite left right lpad rpad repeat reverse split_part strpos starts_with initcap
		md5 sha224 sha256 sha384 sha512 encode decode translate btrim chr ascii quote_ident
		quote_literal quote_nullable format regexp_replace regexp_match regexp_matches
		regexp_split_to_array regexp_split_to_table regexp_like regexp_count regexp_substr
		string_to_array array_to_string array_length array_lower array_upper array_position
		array_positions array_append array_prepend array_cat array_remove array_replace
		cardinality unnest generate_series generate_subscripts xpath xpath_exists xmlparse
		json_agg jsonb_agg json_object_agg jsonb_object_agg array_agg string_agg
		bool_and bool_or every bit_and bit_or stddev stddev_pop stddev_samp variance var_pop
		var_samp corr covar_pop covar_samp mode percentile_cont percentile_disc
		json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb
		json_extract_path jsonb_extract_path json_extract_path_text jsonb_extract_path_text
		json_array_length jsonb_array_length json_each jsonb_each json_each_text jsonb_each_text
		json_array_elements jsonb_array_elements json_array_elements_text jsonb_array_elements_text
		json_object_keys jsonb_object_keys json_typeof jsonb_typeof jsonb_set jsonb_insert
		jsonb_strip_nulls json_strip_nulls jsonb_pretty jsonb_path_query jsonb_path_exists
		jsonb_path_match jsonb_path_query_array jsonb_path_query_first row_to_json
		array_to_json json_populate_record jsonb_populate_record json_to_record jsonb_to_record
		json_to_recordset jsonb_to_recordset jsonb_object json_object
		num_nonnulls num_nulls to_tsvector to_tsquery plainto_tsquery phraseto_tsquery
		websearch_to_tsquery ts_rank ts_rank_cd ts_headline setweight
		lower_inc upper_inc isempty range_merge int4range int8range numrange tsrange tstzrange daterange
		exists grouping sets cube rollup
	`),
	MySQL: set(`
		greatest least char_length character_length octet_length bit_length substring substring_index
		position locate instr concat concat_ws floor ceil ceiling mod power pow sqrt exp ln log log2 log10
		sign truncate sin cos tan asin acos atan atan2 degrees radians pi crc32 conv
		left right lpad rpad repeat reverse space strcmp field find_in_set elt make_set export_set
		insert lcase ucase hex unhex bin oct ord ascii char format md5 sha sha1 sha2 to_base64 from_base64
		quote soundex regexp_replace regexp_like regexp_instr regexp_substr
		if ifnull isnull convert date time year month day dayofmonth dayofweek dayofyear week
		weekday weekofyear yearweek hour minute second microsecond quarter monthname dayname
		date_format time_format str_to_date date_add date_sub adddate subdate addtime subtime
		datediff timediff timestampdiff timestampadd from_days to_days to_seconds from_unixtime
		makedate maketime sec_to_time time_to_sec last_day period_add period_diff extract
		convert_tz get_format
		group_concat bit_and bit_or bit_xor std stddev stddev_pop stddev_samp variance var_pop var_samp
		json_extract json_unquote json_object json_array json_arrayagg json_objectagg json_contains
		json_contains_path json_keys json_length json_valid json_type json_quote json_set
		json_insert json_replace json_remove json_merge json_merge_patch json_merge_preserve
		json_search json_depth json_pretty json_table json_value json_overlaps member_of
		inet_aton inet_ntoa inet6_aton inet6_ntoa is_ipv4 is_ipv6 uuid_to_bin bin_to_uuid
		exists interval grouping match against
	`),
	// SQLite: core (lang_corefunc), math (lang_mathfunc), aggregate
	// (lang_aggfunc, with the percentile extension), JSON (json1) and the
	// read-only FTS3/FTS5 auxiliary functions. Date and time functions are
	// volatile (below); so are the ones whose value is fixed by the build,
	// since a shared store may outlive an upgrade of the library.
	SQLite: set(`
		char_length substring instr concat concat_ws ifnull iif if nullif hex unhex quote
		unicode char printf format glob like likely unlikely likelihood zeroblob typeof
		octet_length soundex unistr unistr_quote
		total group_concat string_agg median percentile percentile_cont percentile_disc
		sign ceil ceiling floor mod power pow sqrt exp ln log log2 log10
		trunc pi sin cos tan asin acos atan atan2 degrees radians
		sinh cosh tanh asinh acosh atanh
		json json_array json_array_length json_extract json_insert json_object json_patch
		json_remove json_replace json_set json_type json_valid json_quote json_group_array
		json_group_object json_each json_tree jsonb jsonb_array jsonb_extract jsonb_object
		jsonb_insert jsonb_patch jsonb_remove jsonb_replace jsonb_set jsonb_group_array
		jsonb_group_object json_error_position json_pretty json_array_insert jsonb_array_insert
		jsonb_each jsonb_tree
		bm25 highlight snippet offsets matchinfo
		generate_series exists
	`),
}

// volatileAll: built-ins that must never be cached in any dialect.
var volatileAll = set(`
now current_timestamp current_date current_time localtime localtimestamp
random rand uuid current_user session_user user system_user
`)

// dialectVolatile: volatile built-ins of one dialect (index: Dialect).
// Not here, so unknown (it may write anything): PostgreSQL's dblink (any
// statement, on any server, this one included). query_to_xml runs its
// query text read-only (a writable CTE in it fails: "… is not allowed in
// a non-volatile function", PostgreSQL 15), so it is volatile, not unknown.
var dialectVolatile = [...]map[string]struct{}{
	Generic: set(`sysdate getdate getutcdate newid systimestamp`),
	Postgres: set(`
		clock_timestamp statement_timestamp transaction_timestamp timeofday
		gen_random_uuid uuid_generate_v1 uuid_generate_v1mc uuid_generate_v4 uuidv4 uuidv7 setseed
		nextval currval lastval setval current_setting set_config
		txid_current txid_current_if_assigned txid_current_snapshot pg_current_xact_id
		pg_current_xact_id_if_assigned pg_backend_pid pg_sleep pg_sleep_for pg_sleep_until
		pg_notify pg_cancel_backend pg_terminate_backend pg_reload_conf pg_rotate_logfile
		pg_switch_wal pg_create_restore_point pg_postmaster_start_time pg_conf_load_time
		inet_client_addr inet_client_port inet_server_addr inet_server_port
		current_database current_catalog current_schema current_schemas current_role
		version pg_is_in_recovery pg_last_wal_replay_lsn pg_current_wal_lsn
		pg_export_snapshot pg_stat_reset pg_stat_get_activity lo_export lo_open
		pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file
		pg_last_xact_replay_timestamp pg_last_wal_receive_lsn pg_database_size
		pg_total_relation_size pg_relation_size pg_table_size pg_indexes_size
		query_to_xml query_to_xmlschema table_to_xml cursor_to_xml
	`),
	MySQL: set(`
		sysdate curdate curtime current_date current_time utc_timestamp utc_date utc_time
		unix_timestamp uuid_short random_bytes last_insert_id found_rows row_count
		connection_id database schema version get_lock release_lock release_all_locks
		is_free_lock is_used_lock sleep benchmark master_pos_wait source_pos_wait load_file
		nextval lastval setval
	`),
	// SQLite's date and time functions are judged by name, so always
	// volatile: an argument of 'now' (or none) reads the clock, and a bound
	// parameter or a column may hold 'now' just as well. load_extension is
	// not here: an extension's initialisation can run anything.
	SQLite: set(`
		date time datetime julianday strftime unixepoch timediff randomblob
		changes total_changes last_insert_rowid sqlite_version sqlite_source_id
		sqlite_compileoption_get sqlite_compileoption_used sqlite_offset
	`),
}
