package redisstore

// keyspace builds every Redis key the store uses; nothing else in the package
// concatenates key names.
//
// Layout, for a prefix P:
//
//	P e:<key>          string  an entry, under the plugin's key; always a TTL
//	P {t:<tag>}:v      string  the tag's version (a decimal integer); no TTL
//	P {t:<tag>}:u      string  while the tag is held: the latest deadline of
//	                           its holds (ms, server clock); no TTL
//	P {t:<tag>}:l      hash    while the tag is held: lease id → deadline; no TTL
//
// The hash tag {t:<tag>} puts a tag's three keys in one cluster slot, so a
// script may update them together; an entry and the tags it depends on are
// in unrelated slots, and are only ever read with single-key commands there.
// (Prefix may not contain braces, which would change the hash tag.)
type keyspace struct {
	entryPrefix string // P + "e:"
	tagPrefix   string // P + "{t:"
}

func newKeyspace(prefix string) keyspace {
	return keyspace{entryPrefix: prefix + "e:", tagPrefix: prefix + "{t:"}
}

// entry is the key of the entry stored under the plugin's key k.
func (ks keyspace) entry(k string) string { return ks.entryPrefix + k }

// tagKeys are the keys of one tag, in the order the scripts expect them.
type tagKeys struct {
	version   string // the version
	heldUntil string // the latest hold deadline
	leases    string // lease id → hold deadline
}

// tag returns the keys of tag t.
func (ks keyspace) tag(t string) tagKeys {
	base := ks.tagPrefix + t + "}:"
	return tagKeys{version: base + "v", heldUntil: base + "u", leases: base + "l"}
}
