package filestore

import (
	"crypto/sha256"
	"os"

	"golang.org/x/sys/unix"
)

// bootID identifies the current boot of the host: the kernel's random boot
// id, which changes at every boot (a container sees its host's). Zero when
// it cannot be read, which disables the check (see Config.Sync).
func bootID() [16]byte {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil || len(b) == 0 {
		return [16]byte{}
	}
	sum := sha256.Sum256(b)
	return [16]byte(sum[:16])
}

const oNoAtime = unix.O_NOATIME
