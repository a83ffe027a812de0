//go:build linux

package decision

import "syscall"

// stamp identifies one version of the file: a rename gives a new inode, a
// rewrite in place a new size or modification time.
type stamp struct {
	dev, ino, size, sec, nsec int64
}

// statFile stats path with one small allocation (the path as a C string;
// os.Stat makes a FileInfo besides); ok is false when it does not exist
// (or cannot be seen).
func statFile(path string) (stamp, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return stamp{}, false
	}
	sec, nsec := st.Mtim.Unix()
	return stamp{dev: int64(st.Dev), ino: int64(st.Ino), size: st.Size, sec: sec, nsec: nsec}, true
}
