package dbusapi

import (
	"github.com/godbus/dbus/v5"
)

// handlerProps is org.freedesktop.DBus.Properties for a handler object:
// one read-only property, ConfigDesc, on org.kernel.TCMUService1. It never
// changes, so PropertiesChanged is never emitted.
type handlerProps string

func (p handlerProps) methods() map[string]any {
	return map[string]any{
		"Get": func(msg dbus.Message, iface, name string) (dbus.Variant, *dbus.Error) {
			if derr := checkSignature(msg, "ss"); derr != nil {
				return dbus.Variant{}, derr
			}
			return p.get(iface, name)
		},
		"GetAll": func(msg dbus.Message, iface string) (map[string]dbus.Variant, *dbus.Error) {
			if derr := checkSignature(msg, "s"); derr != nil {
				return nil, derr
			}
			return p.all(iface)
		},
		"Set": func(msg dbus.Message, iface, name string, v dbus.Variant) *dbus.Error {
			if derr := checkSignature(msg, "ssv"); derr != nil {
				return derr
			}
			return p.set(iface, name, v)
		},
	}
}

func (p handlerProps) all(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if derr := checkArg("interface name", iface); derr != nil {
		return nil, derr
	}
	// An empty interface name means "any interface" (D-Bus
	// specification, org.freedesktop.DBus.Properties).
	if iface != HandlerInterface && iface != "" {
		return nil, dbus.NewError(errUnknownIface, []any{"no properties on interface " + iface})
	}
	return map[string]dbus.Variant{"ConfigDesc": dbus.MakeVariant(string(p))}, nil
}

func (p handlerProps) get(iface, name string) (dbus.Variant, *dbus.Error) {
	all, derr := p.all(iface)
	if derr != nil {
		return dbus.Variant{}, derr
	}
	if derr := checkArg("property name", name); derr != nil {
		return dbus.Variant{}, derr
	}
	v, ok := all[name]
	if !ok {
		return dbus.Variant{}, dbus.NewError(errUnknownProp, []any{"no property " + name})
	}
	return v, nil
}

func (p handlerProps) set(iface, name string, _ dbus.Variant) *dbus.Error {
	if _, derr := p.get(iface, name); derr != nil {
		return derr
	}
	return dbus.NewError(errReadOnly, []any{name + " is read-only"})
}
