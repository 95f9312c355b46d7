package plugin

import "github.com/gormcache/gormcache/keys"

// SetHash replaces the key hash, for tests that force collisions.
func SetHash(p *Plugin, h keys.Hash128) {
	if err := p.setup(); err != nil {
		panic(err)
	}
	p.keys.Hash = h
}
