package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/rs/zerolog"

	"github.com/gotcmu/gotcmu/cmd/gotcmu/internal/config"
)

// logOutput is the daemon's log: JSON lines on stderr (the journal) and,
// when a log directory is set, in <dir>/gotcmu.log, which SIGHUP reopens
// after logrotate moved it.
type logOutput struct {
	logger zerolog.Logger
	file   *reopenFile
}

func openLog(cfg config.Config) (*logOutput, error) {
	dir := cfg.LogDir
	var w io.Writer = os.Stderr
	var rf *reopenFile
	if dir != "" {
		rf = &reopenFile{path: filepath.Join(dir, "gotcmu.log")}
		if err := rf.Reopen(); err != nil {
			return nil, err
		}
		w = zerolog.MultiLevelWriter(os.Stderr, rf)
	}
	l := &logOutput{file: rf, logger: zerolog.New(w).With().Timestamp().Logger()}
	l.SetLevel(cfg)
	return l, nil
}

// SetLevel applies the configured log level (it is process-wide in
// zerolog, so child loggers follow).
func (l *logOutput) SetLevel(cfg config.Config) { zerolog.SetGlobalLevel(cfg.ZerologLevel()) }

// Reopen reopens the log file (SIGHUP).
func (l *logOutput) Reopen() error {
	if l.file == nil {
		return nil
	}
	return l.file.Reopen()
}

func (l *logOutput) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}

// reopenFile is an append-only file that can be swapped for a new one
// with the same name while loggers write to it.
type reopenFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return len(p), nil
	}
	return r.f.Write(p)
}

func (r *reopenFile) Reopen() error {
	if err := os.MkdirAll(filepath.Dir(r.path), 0o755); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (r *reopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
