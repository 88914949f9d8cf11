package config

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Load reads and parses the file at path. A missing file is not an error:
// it gives Default, as an empty one would. Errors keep their errno.
func Load(path string) (Config, []string, error) {
	c, warnings, err := load(path)
	if os.IsNotExist(err) {
		return Default(), nil, nil
	}
	return c, warnings, err
}

// load is Load with a missing file an error, for Watch: a file that is
// gone for a moment while an editor replaces it must not bring back the
// defaults.
func load(path string) (Config, []string, error) {
	data, err := readBounded(path)
	if err != nil {
		return Default(), nil, err
	}
	c, warnings, err := Parse(data)
	if err != nil {
		return Default(), nil, fmt.Errorf("load %s: %w", path, err)
	}
	return c, warnings, nil
}

// readBounded reads at most MaxFileSize bytes of a regular file. O_NONBLOCK
// keeps the open from hanging if a FIFO was put in the file's place.
func readBounded(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, MaxFileSize)
	}
	return data, nil
}
