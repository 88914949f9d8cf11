package dbusapi

import (
	"encoding/xml"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
)

// Introspection data. Argument names follow tcmu-runner's
// tcmu-handler.xml so that generated proxies look the same.
var (
	handlerIface = introspect.Interface{
		Name: HandlerInterface,
		Methods: []introspect.Method{{
			Name: "CheckConfig",
			Args: []introspect.Arg{
				{Name: "configstr", Type: "s", Direction: "in"},
				{Name: "is_valid", Type: "b", Direction: "out"},
				{Name: "message", Type: "s", Direction: "out"},
			},
		}},
		Properties: []introspect.Property{{Name: "ConfigDesc", Type: "s", Access: "read"}},
	}
	managerIface = introspect.Interface{
		Name: ManagerInterface,
		Methods: []introspect.Method{{
			Name: "RegisterHandler",
			Args: []introspect.Arg{
				{Name: "subtype", Type: "s", Direction: "in"},
				{Name: "cfgstr_desc", Type: "s", Direction: "in"},
				{Name: "succeeded", Type: "b", Direction: "out"},
				{Name: "message", Type: "s", Direction: "out"},
			},
		}},
	}
	objectManagerIface = introspect.Interface{
		Name: objectManagerInterface,
		Methods: []introspect.Method{{
			Name: "GetManagedObjects",
			Args: []introspect.Arg{{Name: "objects", Type: "a{oa{sa{sv}}}", Direction: "out"}},
		}},
		Signals: []introspect.Signal{
			{Name: "InterfacesAdded", Args: []introspect.Arg{
				{Name: "object", Type: "o"},
				{Name: "interfaces", Type: "a{sa{sv}}"},
			}},
			{Name: "InterfacesRemoved", Args: []introspect.Arg{
				{Name: "object", Type: "o"},
				{Name: "interfaces", Type: "as"},
			}},
		},
	}
	statusIface = introspect.Interface{
		Name: StatusInterface,
		Methods: []introspect.Method{{
			Name: "Status",
			Args: []introspect.Arg{{Name: "status_json", Type: "s", Direction: "out"}},
		}},
	}
	propertiesIface = introspect.Interface{
		Name: propertiesInterface,
		Methods: []introspect.Method{
			{Name: "Get", Args: []introspect.Arg{
				{Name: "interface_name", Type: "s", Direction: "in"},
				{Name: "property_name", Type: "s", Direction: "in"},
				{Name: "value", Type: "v", Direction: "out"},
			}},
			{Name: "GetAll", Args: []introspect.Arg{
				{Name: "interface_name", Type: "s", Direction: "in"},
				{Name: "properties", Type: "a{sv}", Direction: "out"},
			}},
			{Name: "Set", Args: []introspect.Arg{
				{Name: "interface_name", Type: "s", Direction: "in"},
				{Name: "property_name", Type: "s", Direction: "in"},
				{Name: "value", Type: "v", Direction: "in"},
			}},
		},
		Signals: []introspect.Signal{{Name: "PropertiesChanged", Args: []introspect.Arg{
			{Name: "interface_name", Type: "s"},
			{Name: "changed_properties", Type: "a{sv}"},
			{Name: "invalidated_properties", Type: "as"},
		}}},
	}
	standardIfaces = []introspect.Interface{introspect.IntrospectData, introspect.PeerData}
)

// introspector exports an Introspect method whose answer node builds on
// each call, so child nodes follow handlers as they come and go.
type introspector func() introspect.Node

func (f introspector) methods() map[string]any {
	return map[string]any{"Introspect": func() (string, *dbus.Error) {
		b, err := xml.MarshalIndent(f(), "", " ")
		if err != nil {
			return "", dbus.NewError(errFailed, []any{"marshal introspection data: " + err.Error()})
		}
		return introspect.IntrospectDeclarationString + string(b) + "\n", nil
	}}
}

// rootNode describes RootPath: the ObjectManager, the status interface if
// exported, and one child per handler plus HandlerManager1.
func (s *Service) rootNode() introspect.Node {
	ifaces := []introspect.Interface{objectManagerIface}
	if s.status != nil {
		ifaces = append(ifaces, statusIface)
	}
	n := introspect.Node{Interfaces: append(ifaces, standardIfaces...)}
	for _, st := range s.subtypes() {
		n.Children = append(n.Children, introspect.Node{Name: st})
	}
	n.Children = append(n.Children, introspect.Node{Name: "HandlerManager1"})
	return n
}

// managerNode describes ManagerPath. External handlers' own objects below
// it live on their connections, not on ours, so it has no children here.
func managerNode() introspect.Node {
	return introspect.Node{Interfaces: append([]introspect.Interface{managerIface}, standardIfaces...)}
}

func handlerNode() introspect.Node {
	return introspect.Node{Interfaces: append([]introspect.Interface{handlerIface, propertiesIface}, standardIfaces...)}
}
