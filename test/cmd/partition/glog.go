package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"time"
)

// logEvent is one line of gotcmu's JSON log (zerolog: whole seconds).
type logEvent struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	Owner   string    `json:"owner"`
	Error   string    `json:"error"`
}

// parseLog returns the JSON lines of a gotcmu log; others are skipped.
func parseLog(s string) []logEvent {
	var out []logEvent
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e logEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil && !e.Time.IsZero() {
			out = append(out, e)
		}
	}
	return out
}

// events returns the events at or after from whose message starts with
// prefix.
func events(log []logEvent, prefix string, from time.Time) []logEvent {
	var out []logEvent
	for _, e := range log {
		// Log times are truncated to the second: an event in the second
		// of from counts.
		if !e.Time.Before(from.Truncate(time.Second)) && strings.HasPrefix(e.Message, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// Messages of gotcmu's lock gate (handler/lockgate) the scenario follows.
const (
	msgTook        = "took exclusive lock"
	msgConnLost    = "connection to the cluster lost"
	msgReconnected = "reconnected to the cluster"
	msgEscalated   = "device answered BUSY past its bound"
	msgLockLost    = "exclusive lock lost to another gateway"
	msgTakenAway   = "exclusive lock taken by another gateway while the connection was lost"
	msgReopened    = "reopened after losing the exclusive lock"
	msgFenced      = "blocklisted this gateway's own rbd client"
)

// first returns the earliest event at or after from whose message starts
// with one of prefixes, and false if there is none.
func first(log []logEvent, from time.Time, prefixes ...string) (logEvent, bool) {
	for _, e := range log {
		if e.Time.Before(from.Truncate(time.Second)) {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(e.Message, p) {
				return e, true
			}
		}
	}
	return logEvent{}, false
}
