package plugintest

import (
	"os"
	"path/filepath"
	"strconv"
)

// Processes returns the IDs of the processes that run an executable in
// dir (from /proc: Linux only; none elsewhere). Tests copy a connector
// into a directory of their own to find its processes with it.
func Processes(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && filepath.Dir(exe) == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}
