package rbd

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ConfigDesc is the help text targetcli shows for "create" on user:rbd. It
// describes the string after "rbd/", as tcmu-runner's cfg_desc does.
const ConfigDesc = "RBD image: pool[/namespace]/image[;osd_op_timeout=N][;conf=/path/ceph.conf][;id=user]\n" +
	"  pool, namespace, image: names as in 'rbd ls'\n" +
	"  osd_op_timeout: seconds (0-600) before an OSD operation fails; at least osd_heartbeat_grace+osd_heartbeat_interval\n" +
	"  conf: absolute path of the ceph.conf to use (default $CEPH_CONF or /etc/ceph/ceph.conf)\n" +
	"  id: the client name without 'client.' (default admin)"

// maxConfigLen is the longest config string accepted. The kernel keeps the
// device's config in char dev_config[TCMU_CONFIG_LEN] with TCMU_CONFIG_LEN
// 256 (drivers/target/target_core_user.c), NUL included, and the "rbd/"
// prefix counts too.
const maxConfigLen = 255 - len("rbd/")

// maxOSDOpTimeout is ceph-iscsi's upper bound for osd_op_timeout
// (gateway_setting.py: 0-600).
const maxOSDOpTimeout = 600

// Config is a parsed user:rbd config string.
type Config struct {
	Pool      string
	Namespace string // "" for the default namespace
	Image     string
	// OSDOpTimeout is the osd_op_timeout option; 0 when not given or
	// given as 0 (ceph-iscsi allows 0-600). The timeout used is chosen by
	// the rule in osdOpTimeout.
	OSDOpTimeout time.Duration
	// ConfPath is the conf option: "" means $CEPH_CONF or the default
	// search path of librados.
	ConfPath string
	// ID is the client name without "client."; "" means admin.
	ID string
}

// ParseConfig parses a config string without its "rbd/" prefix, as in
// handler.DeviceInfo.Config: "pool[/namespace]/image[;key=value]...".
//
// tcmu-runner's parser (rbd.c tcmu_rbd_open) ignores unknown options and
// accepts anything up to ';' as an image name. This one refuses every
// string that is not exactly what tcmu-runner and ceph-iscsi write, with a
// message that names what is wrong, because the string comes from whoever
// can write configfs or call CheckConfig over D-Bus.
func ParseConfig(s string) (Config, error) {
	var c Config
	if s == "" {
		return c, errors.New("empty config: want pool[/namespace]/image[;option=value...]")
	}
	if len(s) > maxConfigLen {
		return c, fmt.Errorf("config is %d bytes: at most %d fit in the kernel's dev_config", len(s), maxConfigLen)
	}
	if !utf8.ValidString(s) {
		return c, errors.New("config is not valid UTF-8")
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == 0:
			return c, fmt.Errorf("config has a NUL byte at %d", i)
		case b == ':':
			// rtslib uses ':' to separate the handler from its config.
			return c, fmt.Errorf("config has ':' at %d: not allowed in a user backstore config", i)
		case b < 0x20 || b == 0x7f:
			return c, fmt.Errorf("config has control character %#02x at %d", b, i)
		}
	}

	path, opts, _ := strings.Cut(s, ";")
	if err := c.parsePath(path); err != nil {
		return Config{}, err
	}
	if err := c.parseOptions(opts, strings.Contains(s, ";")); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) parsePath(path string) error {
	parts := strings.Split(path, "/")
	switch len(parts) {
	case 2:
		c.Pool, c.Image = parts[0], parts[1]
	case 3:
		c.Pool, c.Namespace, c.Image = parts[0], parts[1], parts[2]
		if err := checkName("namespace", c.Namespace); err != nil {
			return err
		}
	default:
		return fmt.Errorf("config path %q has %d elements: want pool/image or pool/namespace/image", path, len(parts))
	}
	if err := checkName("pool", c.Pool); err != nil {
		return err
	}
	if err := checkName("image", c.Image); err != nil {
		return err
	}
	// '@' selects a snapshot in rbd's image specs; snapshots are read-only
	// and not served.
	if strings.Contains(c.Image, "@") {
		return fmt.Errorf("image name %q has '@': snapshots cannot be served", c.Image)
	}
	return nil
}

// checkName refuses empty names and characters that Ceph's own spec parsers
// treat as separators, plus spaces, which rtslib and shells mangle.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("empty %s name", what)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%s name %q is not allowed", what, name)
	}
	if i := strings.IndexAny(name, " =\\\"'"); i >= 0 {
		return fmt.Errorf("%s name %q has %q, which is not allowed", what, name, name[i])
	}
	return nil
}

func (c *Config) parseOptions(opts string, hasSemicolon bool) error {
	if !hasSemicolon {
		return nil
	}
	seen := make(map[string]bool, 3)
	for _, opt := range strings.Split(opts, ";") {
		if opt == "" {
			return errors.New("empty option: remove the extra ';'")
		}
		key, val, ok := strings.Cut(opt, "=")
		if !ok {
			return fmt.Errorf("option %q has no '=': want key=value", opt)
		}
		if seen[key] {
			return fmt.Errorf("option %s given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "osd_op_timeout":
			c.OSDOpTimeout, err = parseTimeout(val)
		case "conf":
			c.ConfPath, err = parseConfPath(val)
		case "id":
			c.ID, err = parseID(val)
		default:
			err = fmt.Errorf("unknown option %q: known are osd_op_timeout, conf, id", key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func parseTimeout(val string) (time.Duration, error) {
	// Decimal digits only: strconv would also take "+5" and "0x10".
	if val == "" || strings.Trim(val, "0123456789") != "" || len(val) > 4 {
		return 0, fmt.Errorf("osd_op_timeout %q: want whole seconds, 0-%d", val, maxOSDOpTimeout)
	}
	n, err := strconv.Atoi(val)
	if err != nil {
		return 0, fmt.Errorf("osd_op_timeout %q: %w", val, err)
	}
	if n > maxOSDOpTimeout {
		return 0, fmt.Errorf("osd_op_timeout %d: want 0-%d seconds", n, maxOSDOpTimeout)
	}
	return time.Duration(n) * time.Second, nil
}

func parseConfPath(val string) (string, error) {
	if val == "" {
		return "", errors.New("conf option is empty: want an absolute path")
	}
	if !filepath.IsAbs(val) {
		return "", fmt.Errorf("conf path %q is not absolute", val)
	}
	if filepath.Clean(val) != val {
		return "", fmt.Errorf("conf path %q is not clean (want %q)", val, filepath.Clean(val))
	}
	if strings.HasSuffix(val, "/") {
		return "", fmt.Errorf("conf path %q names a directory", val)
	}
	return val, nil
}

// parseID accepts the characters of a Ceph entity id. ceph-iscsi strips the
// "client." prefix before writing id= (lun.py), and librados adds it back
// (rados_create), so a string that still has it is a mistake.
func parseID(val string) (string, error) {
	if val == "" {
		return "", errors.New("id option is empty: want a client name such as admin")
	}
	if strings.HasPrefix(val, "client.") {
		return "", fmt.Errorf("id %q: give the name without \"client.\"", val)
	}
	for i := 0; i < len(val); i++ {
		b := val[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-' || b == '.') {
			return "", fmt.Errorf("id %q has %q: want letters, digits, '_', '-', '.'", val, b)
		}
	}
	return val, nil
}

// String returns the config in the form ParseConfig accepts, options in a
// fixed order.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString(c.Pool)
	b.WriteByte('/')
	if c.Namespace != "" {
		b.WriteString(c.Namespace)
		b.WriteByte('/')
	}
	b.WriteString(c.Image)
	if c.OSDOpTimeout != 0 {
		fmt.Fprintf(&b, ";osd_op_timeout=%d", int(c.OSDOpTimeout/time.Second))
	}
	if c.ConfPath != "" {
		b.WriteString(";conf=" + c.ConfPath)
	}
	if c.ID != "" {
		b.WriteString(";id=" + c.ID)
	}
	return b.String()
}

// ImageSpec is the image as rbd(8) names it: pool/[namespace/]image.
func (c Config) ImageSpec() string {
	if c.Namespace == "" {
		return c.Pool + "/" + c.Image
	}
	return c.Pool + "/" + c.Namespace + "/" + c.Image
}
