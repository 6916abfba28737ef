package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/rktng/rkt/common/pod"
)

// podJSON is rkt's JSON shape of a pod (status --format=json, list
// --format=json); clients such as Nomad and rktlet parse it.
type podJSON struct {
	Name            string            `json:"name"`
	State           string            `json:"state"`
	Networks        []netJSON         `json:"networks,omitempty"`
	AppNames        []string          `json:"app_names,omitempty"`
	Apps            []appJSON         `json:"apps,omitempty"`
	CreatedAt       *int64            `json:"created_at,omitempty"`
	StartedAt       *int64            `json:"started_at,omitempty"`
	UserAnnotations map[string]string `json:"user_annotations,omitempty"`
	UserLabels      map[string]string `json:"user_labels,omitempty"`

	// Text output needs these; they are not part of rkt's JSON.
	// textState is rkt's full state name ("exited garbage"), which
	// JSON maps to what clients match on (pod.State.JSONName).
	textState string
	pid       int
	exited    bool
	created   time.Time
	started   time.Time
	imageName map[string]string
}

type netJSON struct {
	NetName    string `json:"netName"`
	NetConf    string `json:"netConf"`
	PluginPath string `json:"pluginPath"`
	IfName     string `json:"ifName"`
	IP         string `json:"ip"`
	Args       string `json:"args"`
	Mask       string `json:"mask"`
}

type appJSON struct {
	Name            string            `json:"name"`
	State           string            `json:"state"`
	CreatedAt       *int64            `json:"created_at,omitempty"`
	StartedAt       *int64            `json:"started_at,omitempty"`
	FinishedAt      *int64            `json:"finished_at,omitempty"`
	ExitCode        *int              `json:"exit_code,omitempty"`
	ImageID         string            `json:"image_id"`
	Mounts          []mountJSON       `json:"mounts,omitempty"`
	UserAnnotations map[string]string `json:"user_annotations,omitempty"`
	UserLabels      map[string]string `json:"user_labels,omitempty"`
}

type mountJSON struct {
	Name          string `json:"name"`
	ContainerPath string `json:"container_path"`
	HostPath      string `json:"host_path"`
	ReadOnly      bool   `json:"read_only"`
}

// describePod reads what rkt knows about p. A pod whose manifest cannot be
// read yet (embryo, preparing) is described by its state alone. The pid,
// which only status prints, is looked up when withPID is set: list does
// not wait for a starting pod's pid.
func describePod(p *pod.Pod, withPID bool) podJSON {
	j := podJSON{Name: p.UUID.String(), State: p.State().JSONName(), textState: p.State().String(), imageName: map[string]string{}}
	j.created = p.CreatedAt()
	if !j.created.IsZero() {
		s := j.created.Unix()
		j.CreatedAt = &s
	}
	if t, ok := p.StartedAt(); ok {
		j.started = t
		s := t.Unix()
		j.StartedAt = &s
	}
	running := p.State() == pod.Running
	j.exited = p.State().AfterRun()
	if withPID && (running || j.exited || p.State() == pod.Deleting) {
		if pid, err := p.PID(); err == nil {
			j.pid = pid
		}
	}
	pm, err := p.Summary()
	if err != nil {
		return j
	}
	j.Networks = podNetworks(p)
	if len(pm.UserAnnotations) > 0 {
		j.UserAnnotations = pm.UserAnnotations
	}
	if len(pm.UserLabels) > 0 {
		j.UserLabels = pm.UserLabels
	}
	vols := map[string]string{}
	ro := map[string]bool{}
	for _, v := range pm.Volumes {
		vols[v.Name] = v.Source
		if v.ReadOnly != nil {
			ro[v.Name] = *v.ReadOnly
		}
	}
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		name := ra.Name
		a := appJSON{Name: name, ImageID: ra.Image.ID, State: "created"}
		if ra.Image.Name != nil {
			j.imageName[name] = *ra.Image.Name
			if v, ok := ra.ImageLabel("version"); ok {
				j.imageName[name] += ":" + v
			}
		}
		if j.CreatedAt != nil {
			ns := j.created.UnixNano()
			a.CreatedAt = &ns
		}
		if j.StartedAt != nil {
			ns := j.started.UnixNano()
			a.StartedAt = &ns
		}
		if ra.App != nil {
			if len(ra.App.UserAnnotations) > 0 {
				a.UserAnnotations = ra.App.UserAnnotations
			}
			if len(ra.App.UserLabels) > 0 {
				a.UserLabels = ra.App.UserLabels
			}
		}
		for _, m := range ra.Mounts {
			a.Mounts = append(a.Mounts, mountJSON{Name: m.Volume, ContainerPath: m.Path,
				HostPath: vols[m.Volume], ReadOnly: ro[m.Volume]})
		}
		switch {
		case running || j.exited:
			if code, err := p.AppExitCode(name); err == nil {
				a.State = "exited"
				a.ExitCode = &code
				if finished, ok := p.ExitedAt(); ok {
					ns := finished.UnixNano()
					a.FinishedAt = &ns
				}
			} else if running {
				a.State = "running"
			} else {
				a.State = "exited"
			}
		case p.State() != pod.Prepared:
			a.State = "unknown"
		}
		j.AppNames = append(j.AppNames, name)
		j.Apps = append(j.Apps, a)
	}
	return j
}

// printJSON prints v on one line (or indented for json-pretty).
func printJSON(w io.Writer, v any, format string) error {
	var b []byte
	var err error
	if format == "json-pretty" {
		b, err = json.MarshalIndent(v, "", "\t")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func checkFormat(f string) error {
	switch f {
	case "", "json", "json-pretty":
		return nil
	}
	return usageErrorf("--format %q: want json or json-pretty", f)
}

// timeLayout is rkt's layout of absolute times (list --full, status,
// image list --full): fractions of a second only when there are some.
const timeLayout = "2006-01-02 15:04:05.999 -0700 MST"

// humanTime is rkt's time as list and image list print it: relative
// ("now", "3 minutes ago", "2 weeks ago", go-humanize's words, as rkt used
// go-humanize), or absolute with full.
func humanTime(t time.Time, full bool) string {
	if t.IsZero() {
		return ""
	}
	if full {
		return t.Format(timeLayout)
	}
	return humanize.Time(t)
}
