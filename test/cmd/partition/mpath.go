package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// command runs name with args for at most d and returns its output.
func command(d time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// diskWrites returns the writes completed on a block device (field 5 of
// /sys/block/DEV/stat).
func diskWrites(dev string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/sys/block", dev, "stat"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 5 {
		return 0, fmt.Errorf("/sys/block/%s/stat: %q", dev, b)
	}
	return strconv.ParseInt(f[4], 10, 64)
}

// otherSlave returns the path under dm-N that is not path.
func otherSlave(dm, path string) (string, error) {
	ents, err := os.ReadDir(filepath.Join("/sys/block", dm, "slaves"))
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.Name() != path {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("no path of %s but %s", dm, path)
}

// groupOf returns the number (from 1) of the path group holding dev in
// `multipathd show topology`, 0 if none does.
func groupOf(topology, dev string) int {
	n := 0
	for _, line := range strings.Split(topology, "\n") {
		if strings.Contains(line, "-+- policy=") {
			n++
		}
		if n > 0 && strings.Contains(line, " "+dev+" ") {
			return n
		}
	}
	return 0
}

// pathStates parses `multipathd show paths format "%d %t %T"`: device ->
// "dm-state/checker-state" (active/ready, failed/faulty, ...).
func pathStates(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] != "dev" {
			m[f[0]] = f[1] + "/" + f[2]
		}
	}
	return m
}

// lockHolder names the gateway whose client address is in `rbd lock ls`'s
// output: "A", "B", "nobody", or "other" (someone else's).
func lockHolder(out, addrA, addrB string) string {
	switch {
	case strings.Contains(out, addrA+":"):
		return "A"
	case strings.Contains(out, addrB+":"):
		return "B"
	case strings.Contains(out, "address"):
		return "other"
	}
	return "nobody"
}
