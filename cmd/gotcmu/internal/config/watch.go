package config

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// settle is how long the file must stay quiet after an event before it is
// read: an editor's save is several events (truncate, writes, close), and
// reading between them would apply a half-written file.
const settle = 100 * time.Millisecond

// watchMask selects the events on the directory that can change the file.
// Deletion and renames away are not among them: editors that replace the
// file remove or rename the old one first, and the configuration stays as
// it was until the new file appears. IN_DELETE_SELF and IN_MOVE_SELF end
// the watch.
const watchMask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_CREATE |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// Watch follows the file at path, starting from current (what Load gave),
// and calls apply with each new configuration that differs from the last
// one applied, until ctx ends. A file that does not load is logged and not
// applied. It watches the file's directory, as tcmu-runner does, so editors
// that write a new file and rename it over the old one are seen; a
// symbolic link at path is followed when read, but changes to its target
// elsewhere are not seen. It returns nil when ctx ends, or an error if the
// directory cannot be watched or goes away.
func Watch(ctx context.Context, path string, current Config, log zerolog.Logger, apply func(Config)) error {
	path = filepath.Clean(path)
	dir, name := filepath.Split(path)
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("watch %s: inotify_init1: %w", path, err)
	}
	// Non-blocking and wrapped in an os.File, reads wait in Go's poller
	// and Close interrupts them.
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	if _, err := unix.InotifyAddWatch(fd, dir, watchMask); err != nil {
		return fmt.Errorf("watch %s: inotify_add_watch %s: %w", path, dir, err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()

	changed := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() { readErr <- readEvents(f, name, changed) }()

	reload := func() {
		c, warnings, err := load(path)
		if os.IsNotExist(err) {
			log.Info().Str("file", path).Msg("configuration file is gone; keeping the configuration")
			return
		}
		if err != nil {
			log.Error().Err(err).Msg("configuration not applied; keeping the previous one")
			return
		}
		for _, w := range warnings {
			log.Warn().Str("file", path).Msg(w)
		}
		if c == current {
			return
		}
		current = c
		log.Info().Str("file", path).Msg("configuration reloaded")
		apply(c)
	}
	// The file may have changed between the caller's Load and the watch.
	reload()

	timer := time.NewTimer(settle)
	timer.Stop()
	for {
		select {
		case <-changed:
			timer.Reset(settle)
		case <-timer.C:
			reload()
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch %s: %w", path, err)
		}
	}
}

// readEvents reads inotify events until f fails or the watched directory
// goes, signalling changed (without blocking) for events about name.
func readEvents(f *os.File, name string, changed chan<- struct{}) error {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := f.Read(buf)
		if err != nil {
			return fmt.Errorf("read inotify events: %w", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			// struct inotify_event: s32 wd, u32 mask, u32 cookie,
			// u32 len, then len bytes of NUL-padded name.
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := binary.NativeEndian.Uint32(buf[off+12:])
			nameEnd := off + unix.SizeofInotifyEvent + int(nameLen)
			if nameLen > uint32(len(buf)) || nameEnd > n {
				return errors.New("read inotify events: truncated event")
			}
			evName := string(trimNUL(buf[off+unix.SizeofInotifyEvent : nameEnd]))
			off = nameEnd
			switch {
			case mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0:
				return errors.New("the directory was removed or moved")
			case mask&unix.IN_Q_OVERFLOW != 0, evName == name:
				// After an overflow any event may have been lost.
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
	}
}

// trimNUL cuts the NUL padding of an inotify event's name.
func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
