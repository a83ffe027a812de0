//go:build !linux

package decision

import "os"

type stamp struct {
	size, mod int64
}

func statFile(path string) (stamp, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, false
	}
	return stamp{size: fi.Size(), mod: fi.ModTime().UnixNano()}, true
}
