package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits, as in libtcmu_config.c.
const (
	// MaxFileSize is TCMU_MAX_CFG_FILE_SIZE: longer files are refused.
	MaxFileSize = 2 << 20
	// maxKeyLen is MAX_KEY_LEN.
	maxKeyLen = 64
	// maxStringLen is MAX_VAL_STR_LEN.
	maxStringLen = 256
)

// Parse reads the text of a configuration file. Keys it does not know and
// values it adjusted come back as warnings. An error names the first line
// it could not use; such a file must not be applied.
func Parse(data []byte) (Config, []string, error) {
	c := Default()
	if len(data) > MaxFileSize {
		return c, nil, fmt.Errorf("parse config: %d bytes is over the %d byte limit", len(data), MaxFileSize)
	}
	var warnings []string
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		key, v, ok, err := parseLine(strings.TrimSuffix(line, "\r"))
		if err != nil {
			return c, nil, fmt.Errorf("parse config: line %d: %w", n, err)
		}
		if !ok {
			continue
		}
		opt, known := options[key]
		if !known {
			warnings = append(warnings, fmt.Sprintf("line %d: unknown key %s ignored", n, key))
			continue
		}
		if v.kind != opt.kind {
			return c, nil, fmt.Errorf("parse config: line %d: %s takes %s", n, key, opt.kind)
		}
		warning, err := opt.set(&c, v)
		if err != nil {
			return c, nil, fmt.Errorf("parse config: line %d: %w", n, err)
		}
		if warning != "" {
			warnings = append(warnings, fmt.Sprintf("line %d: %s", n, warning))
		}
	}
	return c, warnings, nil
}

// parseLine parses one line. ok is false for blank and comment lines.
func parseLine(line string) (key string, v value, ok bool, err error) {
	s := strings.TrimLeft(line, " \t")
	if s == "" || s[0] == '#' {
		return "", value{}, false, nil
	}
	end := 0
	for end < len(s) && isKeyChar(s[end]) {
		end++
	}
	key = s[:end]
	switch {
	case key == "" || !isLetter(key[0]):
		return "", value{}, false, fmt.Errorf("expected a key, got %q", clip(s))
	case len(key) > maxKeyLen:
		return "", value{}, false, fmt.Errorf("key %s... is longer than %d characters", key[:maxKeyLen], maxKeyLen)
	}
	rest := strings.TrimLeft(s[end:], " \t")
	if rest == "" || rest[0] == '#' {
		// A key alone is a boolean option that is on.
		return key, value{kind: kindBool, b: true}, true, nil
	}
	if rest[0] != '=' {
		return "", value{}, false, fmt.Errorf("%s: expected '=', got %q", key, clip(rest))
	}
	v, err = parseValue(strings.TrimLeft(rest[1:], " \t"))
	if err != nil {
		return "", value{}, false, fmt.Errorf("%s: %w", key, err)
	}
	return key, v, true, nil
}

// parseValue parses what follows '=': a quoted string, digits, or
// true/false, then nothing but blanks or a comment.
func parseValue(s string) (value, error) {
	var (
		v    value
		tail string
	)
	switch {
	case s == "":
		return value{}, errors.New("no value after '='")
	case s[0] == '"' || s[0] == '\'':
		end := strings.IndexByte(s[1:], s[0])
		if end < 0 {
			return value{}, fmt.Errorf("unterminated string %q", clip(s))
		}
		v = value{kind: kindString, s: s[1 : 1+end]}
		if len(v.s) > maxStringLen {
			return value{}, fmt.Errorf("string is longer than %d bytes", maxStringLen)
		}
		tail = s[2+end:]
	case isDigit(s[0]):
		end := 0
		for end < len(s) && isDigit(s[end]) {
			end++
		}
		i, err := strconv.ParseInt(s[:end], 10, 32)
		if err != nil {
			return value{}, fmt.Errorf("integer %s is too large", clip(s[:end]))
		}
		v = value{kind: kindInt, i: i}
		tail = s[end:]
	default:
		end := 0
		for end < len(s) && isKeyChar(s[end]) {
			end++
		}
		switch s[:end] {
		case "true":
			v = value{kind: kindBool, b: true}
		case "false":
			v = value{kind: kindBool, b: false}
		default:
			return value{}, fmt.Errorf("value %q is not an integer, a quoted string or true/false", clip(s))
		}
		tail = s[end:]
	}
	tail = strings.TrimLeft(tail, " \t")
	if tail != "" && tail[0] != '#' {
		return value{}, fmt.Errorf("unexpected %q after the value", clip(tail))
	}
	return v, nil
}

func isLetter(c byte) bool  { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool   { return '0' <= c && c <= '9' }
func isKeyChar(c byte) bool { return isLetter(c) || isDigit(c) || c == '_' }

// clip shortens text quoted in an error message.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
