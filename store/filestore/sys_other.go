//go:build !linux

package filestore

// bootID is zero where the store knows no boot id: version files written
// without Config.Sync are then trusted across reboots (see the package doc).
func bootID() [16]byte { return [16]byte{} }

const oNoAtime = 0
